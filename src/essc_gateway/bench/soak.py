"""The soak: one gateway under a steady mixed load for minutes, sampled as it runs. What it
holds (resident memory, open files, asyncio tasks) must stop growing once warmed up: at the
end within `RSS_GROWTH_LIMIT` of what it held after the first minute, and no more files or
tasks than then (a few of either come and go with the calls in flight). Its bounded caches
are sized to fill within that minute (`HOLDER_KEY_CACHE`)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from essc_gateway.bench.measured import ProcessUsage
from essc_gateway.bench.processes import (
    Server,
    free_port,
    gateway_secrets,
    start_gateway,
    start_platform,
)
from essc_gateway.loadtest import LoadOptions, run_load
from essc_gateway.loadtest.applicants import population_size_for

PROGRESS = sys.stderr
RSS_GROWTH_LIMIT = 0.10
WARM_UP = 60.0
"""Seconds after which the gateway counts as warmed up: its later samples are compared."""
WINDOW = 3
"""Samples whose median is one figure of the verdict (at the start and at the end)."""
IN_FLIGHT_SLACK = 8
"""Files or tasks more than after warm-up that still are no growth: calls in flight."""
HOLDER_KEY_CACHE = 200
"""Holder keys the soak's gateway keeps (10 000 by default: 17 minutes of its Issues)."""
MIX = {"verify": 0.4, "query": 0.25, "authenticate": 0.25, "issue": 0.1}
_TASKS = re.compile(r"^essc_runtime_tasks(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)


@dataclass(frozen=True)
class SoakOptions:
    duration: float = 600.0
    rate: float = 100.0
    """Requests per second, open loop, in the `MIX` shares."""
    sample_every: float = 10.0
    warm_up: float = WARM_UP
    """Seconds after which the gateway counts as warmed up: its later samples are judged."""
    holders: int = 40
    seed: int = 20240320
    work_dir: Path | None = None


@dataclass(frozen=True)
class Sample:
    at: float
    """Seconds since the load's measured phase began."""
    usage: ProcessUsage
    tasks: int
    """-1 when the gateway's gauge could not be read."""

    @property
    def read(self) -> bool:
        """Both the process and its metrics answered."""
        return self.tasks >= 0 and self.usage.rss_bytes > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at, 1),
            "rss_mb": round(self.usage.rss_bytes / 2**20, 1),
            "open_fds": self.usage.open_fds,
            "tasks": self.tasks,
            "cpu_seconds": round(self.usage.cpu_seconds, 2),
        }


def _tasks(metrics_address: str) -> int:
    """The gateway's task gauge, or -1 when it cannot be read (the scrape failed or the
    gauge is missing): an unread sample, which the verdict counts against steadiness."""
    try:
        with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except (OSError, ValueError, http.client.HTTPException):  # refused, timed out, cut short
        return -1
    found = _TASKS.search(text)
    return int(float(found.group(1))) if found else -1


async def _sample(gateway: Server, metrics_address: str, started: float) -> Sample:
    tasks = await asyncio.to_thread(_tasks, metrics_address)
    try:
        usage = gateway.usage()
    except psutil.Error:  # the gateway is gone: an unread sample, not a crashed soak
        usage = ProcessUsage(0.0, 0, 0)
    return Sample(time.monotonic() - started, usage, tasks)


def judge(
    samples: list[Sample], ran_its_time: bool = True, warm_up: float = WARM_UP
) -> dict[str, Any]:
    """The verdict: the median of the last `WINDOW` samples against the median of the first
    `WINDOW` taken after `warm_up`, so that one sample caught amid a burst of calls decides
    nothing. Not steady: a load that ended early (its applicants used up), a soak too short
    to have two such windows, or a sample that could not be read (the gateway gone, its
    metrics unanswered)."""
    warm = [s for s in samples if s.at >= warm_up]
    long_enough = len(warm) >= 2 * WINDOW
    unread = sum(1 for s in warm if not s.read)
    if not warm:
        return {
            "ran_its_time": ran_its_time,
            "long_enough": False,
            "unread_samples": 0,
            "steady": False,
        }
    first, last = _medians(warm[:WINDOW]), _medians(warm[-WINDOW:])
    growth = last["rss_mb"] / first["rss_mb"] - 1 if first["rss_mb"] else 0.0
    held = {
        "rss_steady": growth <= RSS_GROWTH_LIMIT,
        "fds_steady": last["open_fds"] <= first["open_fds"] + IN_FLIGHT_SLACK,
        "tasks_steady": 0 <= last["tasks"] <= first["tasks"] + IN_FLIGHT_SLACK,
    }
    return {
        "after_warm_up": first,
        "at_end": last,
        "ran_its_time": ran_its_time,
        "long_enough": long_enough,
        "unread_samples": unread,
        "rss_growth": round(growth, 3),
        **held,
        "steady": ran_its_time and long_enough and not unread and all(held.values()),
    }


def _medians(window: list[Sample]) -> dict[str, float]:
    """Each figure's median over `window`, from the samples that were read."""
    read = [s for s in window if s.read] or window
    return {
        "rss_mb": round(statistics.median(s.usage.rss_bytes for s in read) / 2**20, 1),
        "open_fds": statistics.median(s.usage.open_fds for s in read),
        "tasks": statistics.median(s.tasks for s in read),
    }


async def run_soak(options: SoakOptions) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="essc-soak-") as scratch:
        directory = options.work_dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        applicants = int(options.rate * MIX["issue"] * options.duration * 1.2) + 50
        population = population_size_for(
            options.seed, applicants + options.holders, datetime.now(UTC).date()
        )
        secrets = gateway_secrets(directory)
        # A holder-key cache that fills within the warm-up (each Issue adds a key): growth
        # after it is then growth the caches do not explain.
        secrets = replace(
            secrets,
            environment={**secrets.environment, "ESSC_HOLDER_KEY_CACHE": str(HOLDER_KEY_CACHE)},
        )
        platform = await start_platform(directory, options.seed, population)
        try:
            metrics_port = free_port()
            gateway = await start_gateway(
                directory, secrets, platform.address, 1, metrics_port=metrics_port
            )
            try:
                return await _soak(
                    options, gateway, secrets.bank_token, metrics_port, applicants, population
                )
            finally:
                await gateway.stop()
        finally:
            await platform.stop()


async def _soak(
    options: SoakOptions,
    gateway: Server,
    token: str,
    metrics_port: int,
    applicants: int,
    population: int,
) -> dict[str, Any]:
    load = LoadOptions(
        gateway.address,
        token=token,
        mix=MIX,
        mode="open",
        rate=options.rate,
        duration=options.duration,
        holders=options.holders,
        applicants=applicants,
        people=applicants + options.holders,
        seed=options.seed,
        population_size=population,  # the workers make the platform's population again
        timeout=30.0,
        progress=False,
        summary=False,
    )
    samples: list[Sample] = []
    measuring = asyncio.Event()
    started = 0.0

    def on_phase(phase: str) -> None:
        nonlocal started
        if phase == "measured":
            started = time.monotonic()
            measuring.set()

    async def sampler() -> None:
        await measuring.wait()
        metrics = f"127.0.0.1:{metrics_port}"
        tick = started
        while True:
            samples.append(await _sample(gateway, metrics, started))
            print(f"soak: {samples[-1].to_json()}", file=PROGRESS, flush=True)
            # On a timetable: a slow sample neither delays the next ones nor makes a burst.
            tick = max(tick + options.sample_every, time.monotonic())
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    sampling = asyncio.create_task(sampler())
    try:
        result = await run_load(load, on_phase)
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling  # a sampler that failed says so here, not in a lost task
    samples.append(await _sample(gateway, f"127.0.0.1:{metrics_port}", started))
    summary = result.overall
    return {
        "soak": "essc-gateway soak",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": options.duration,
        "rate": options.rate,
        "mix": MIX,
        "requests": summary.count,
        "load_seconds": round(result.duration, 1),
        "applicants": result.applicants.to_json(),
        "status_codes": dict(summary.status_codes),
        "p50_ms": round(summary.percentiles[50.0] * 1000, 3),
        "p99_ms": round(summary.percentiles[99.0] * 1000, 3),
        "verdict": judge(samples, result.duration >= options.duration * 0.95, options.warm_up),
        "samples": [s.to_json() for s in samples],
    }
