"""One measurement of the bench: the same load repeated, reported by its median run and the
spread between runs (a noisy 2-core machine moves single runs by ±20 %), with the server's
memory and open files after each run."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from essc_gateway.loadtest import LoadResult, Summary


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """What a server's processes hold and have used so far."""

    cpu_seconds: float
    """User + system CPU seconds."""
    rss_bytes: int
    open_fds: int


def usage_of(processes: Iterable[psutil.Process]) -> ProcessUsage:
    """The sum over `processes`; one that just ended counts for nothing."""
    cpu, rss, fds = 0.0, 0, 0
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                rss += process.memory_info().rss
                fds += process.num_fds()
        except psutil.NoSuchProcess:
            continue
        cpu += times.user + times.system
    return ProcessUsage(cpu, rss, fds)


@dataclass(frozen=True, slots=True)
class Run:
    """One load against one server."""

    result: LoadResult
    cpu_seconds: float
    """The server's CPU seconds in the measured phase."""
    after: ProcessUsage
    """The server's usage when the run ended."""

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_seconds / max(self.result.overall.count, 1)


@dataclass(frozen=True)
class Measured:
    """The runs of one measurement (at least one), judged by their median."""

    runs: tuple[Run, ...]

    @property
    def median_run(self) -> Run:
        """The run with the median CPU per request (the lower middle for an even count)."""
        ordered = sorted(self.runs, key=lambda run: run.cpu_per_request)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def result(self) -> LoadResult:
        return self.median_run.result

    @property
    def results(self) -> tuple[LoadResult, ...]:
        return tuple(run.result for run in self.runs)

    @property
    def summary(self) -> Summary:
        return self.result.overall

    @property
    def cpu_per_request(self) -> float:
        return self.median_run.cpu_per_request

    def to_json(self) -> dict[str, Any]:
        """The median run's figures; latencies are each the median over the runs; every
        run's CPU per request, their spread ((max - min) / median), memory and files."""
        s, run = self.summary, self.median_run
        cpu_runs = [round(r.cpu_per_request * 1e6, 1) for r in self.runs]
        median_cpu = run.cpu_per_request * 1e6
        return {
            "requests": s.count,
            "errors": s.errors,
            "status_codes": dict(s.status_codes),
            "rps": round(s.rps, 1),
            "cpu_seconds": round(run.cpu_seconds, 3),
            "cpu_us_per_request": round(median_cpu, 1),
            "p50_ms": _median_ms(self.runs, 50.0),
            "p99_ms": _median_ms(self.runs, 99.0),
            "repeats": len(self.runs),
            "cpu_us_per_request_runs": cpu_runs,
            "cpu_spread": round((max(cpu_runs) - min(cpu_runs)) / median_cpu, 3)
            if median_cpu > 0
            else 0.0,
            "p99_ms_runs": [round(r.result.overall.percentiles[99.0] * 1000, 3) for r in self.runs],
            "rss_mb_after": [round(r.after.rss_bytes / 2**20, 1) for r in self.runs],
            "open_fds_after": [r.after.open_fds for r in self.runs],
        }


def _median_ms(runs: Iterable[Run], percentile: float) -> float:
    return round(
        statistics.median(r.result.overall.percentiles[percentile] for r in runs) * 1000, 3
    )
