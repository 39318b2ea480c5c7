"""The benchmark: in one run on one machine, the bare echo service (baseline), then the
gateway for each RPC, against the simulated platform, each server in its own process.

For each measured load the server's CPU seconds (user + system, psutil) are read when the
measured phase starts and when it ends: CPU per request = their difference / answers. Ratios
to the echo baseline are what hold from one noisy machine to another; absolute rates don't.
"""

from __future__ import annotations

import asyncio
import math
import platform as host
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import psutil
from google.protobuf.timestamp_pb2 import Timestamp

from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.bench.cluster_bench import (
    ReplicaCpu,
    fresh_database,
    running_cluster,
    tls_of,
)
from essc_gateway.bench.evidence_bench import measure_evidence
from essc_gateway.bench.key_bench import measure_rekey
from essc_gateway.bench.measured import Measured, ProcessUsage, Run
from essc_gateway.bench.processes import (
    GatewaySecrets,
    Server,
    free_port,
    free_ports_in_a_row,
    gateway_secrets,
    start_echo,
    start_gateway,
    start_platform,
)
from essc_gateway.bench.sizing import (
    CALIBRATION_ATTEMPTS,
    CALIBRATION_SECONDS,
    IssueSizing,
    calibration_people,
    first_calibration_applicants,
)
from essc_gateway.bench.store_rate import StoreRate, measure_store_rate
from essc_gateway.bench.targets import TARGETS, Target
from essc_gateway.keys.suites import Suite
from essc_gateway.loadtest import LoadOptions, run_load
from essc_gateway.loadtest.applicants import population_size_for
from essc_gateway_client import ClientConfig, OperatorClient

PROGRESS = sys.stderr


@dataclass(frozen=True)
class BenchOptions:
    """How long and how hard each measurement runs."""

    duration: float = 5.0
    """Seconds of each measured phase."""
    concurrency: int = 32
    """Closed loop (maximum throughput): requests in flight."""
    load_workers: int = 2
    """Processes sending the load."""
    rpcs: tuple[str, ...] = ("verify", "issue", "query", "authenticate")
    population_size: int = 10_000
    """People on the platform at least; more when the measured Issue rate needs them."""
    seed: int = 20240320
    holders: int = 40
    fast_fail_rate: float = 200.0
    """Open-loop rate of the maintenance fast-fail measurement."""
    store_seconds: float = 3.0
    store_writers: int = 256
    """Concurrent writers: as many as the requests a gateway admits at once (max_in_flight)."""
    work_dir: Path | None = None
    """Where servers keep their stores and logs (default: a temporary directory)."""
    evidence_log_size: int = 10_000_000
    """Entries of the synthetic evidence log inclusion proofs are timed in."""
    cache_dir: Path = Path("var/bench-cache")
    """Where the synthetic log is kept between runs (1 GB and a minute to build at 10 M)."""
    suite: Suite = Suite.AES256_GCM_HMAC_SHA256
    """The algorithm suite of the bank's keys (K3): the cost of each is measured alike."""
    rekey_holders: int = 2000
    """Holders re-encrypted by the key incident measurement."""
    repeats: int = 3
    """Runs of each measured load; the report gives their median and spread."""

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError("repeats must be 1 or more")


class UsageSource(Protocol):
    """What a load is measured against: its server's processes, read before and after."""

    def usage(self) -> ProcessUsage: ...


class Bench:
    """Runs the measurements in order; keeps what each found."""

    def __init__(self, options: BenchOptions, directory: Path) -> None:
        self.options = options
        self.directory = directory
        self.population_size = options.population_size
        """The population of the platform the loads run against."""
        self.sizing = IssueSizing(0.0, options.duration, options.concurrency, options.load_workers)
        """Applicants for the Issue runs (`calibrate_issue`)."""
        self._next_person = 0

    def _people(self, count: int) -> int:
        """The first of `count` eligible people not used by an earlier load."""
        first = self._next_person
        self._next_person += count
        return first

    async def load(
        self,
        server: UsageSource,
        base: LoadOptions,
        *,
        rate: float | None = None,
        people: int = 0,
    ) -> Measured:
        """`repeats` runs of one load, each with people of its own; `rate` makes it open
        loop, else closed loop at `concurrency`."""
        runs = [await self._run(server, base, rate, people) for _ in range(self.options.repeats)]
        return Measured(tuple(runs))

    async def _run(
        self, server: UsageSource, base: LoadOptions, rate: float | None, people: int
    ) -> Run:
        o = self.options
        people += base.holders if base.uses_holders else 0
        options = replace(
            base,
            mode="open" if rate is not None else "closed",
            rate=rate or 1.0,
            concurrency=o.concurrency,
            duration=o.duration,
            workers=o.load_workers,
            seed=o.seed,
            population_size=self.population_size,
            first_person=self._people(people),
            people=people,
            progress=False,
            summary=False,
        )
        marks: dict[str, ProcessUsage] = {}

        def on_phase(phase: str) -> None:
            marks[phase] = server.usage()

        result = await run_load(options, on_phase)
        cpu = marks["done"].cpu_seconds - marks["measured"].cpu_seconds
        return Run(result, cpu, marks["done"])


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator > 0 else math.inf


def _target(
    name: str, limit: float, measured: float, unit: str, *, at_most: bool = True
) -> dict[str, Any]:
    met = measured <= limit if at_most else measured >= limit
    return {
        "name": name,
        "target": f"{'<=' if at_most else '>='} {limit:g} {unit}".strip(),
        "measured": measured,
        "met": met,
    }


async def _baseline(bench: Bench) -> dict[str, Any]:
    echo = await start_echo(bench.directory)
    floors: dict[str, Measured] = {}
    try:
        print("bench: echo baseline", file=PROGRESS, flush=True)
        measured = await bench.load(echo, LoadOptions(echo.address, service="echo"))
        # The latency of one bare gRPC round trip at the fast-fail rate: the floor under
        # any answer, the gateway's included.
        at_rate = await bench.load(
            echo, LoadOptions(echo.address, service="echo"), rate=bench.options.fast_fail_rate
        )
        for calls in sorted({TARGETS[rpc].platform_calls for rpc in bench.options.rpcs}):
            print(f"bench: fan-out floor, {calls} upstream call(s)", file=PROGRESS, flush=True)
            floor = await start_echo(bench.directory, echo.address, calls)
            try:
                floors[str(calls)] = await bench.load(
                    floor, LoadOptions(floor.address, service="echo")
                )
            finally:
                await floor.stop()
    finally:
        await echo.stop()
    return {
        "echo": measured.to_json(),
        "echo_at_fast_fail_rate": at_rate.to_json(),
        "fan_out_floor": {calls: floor.to_json() for calls, floor in floors.items()},
        "_measured": measured,
        "_floors": floors,
    }


async def calibrate_issue(bench: Bench, secrets: GatewaySecrets) -> IssueSizing:
    """Issue's maximum rate, measured briefly against a platform and a gateway of their own
    (so that the measured runs start on a fresh store), with doubling applicants until a run
    lasts its full time without using them up."""
    o = bench.options
    calibration = Bench(
        replace(o, duration=min(CALIBRATION_SECONDS, o.duration), repeats=1), bench.directory
    )
    calibration.population_size = population_size_for(
        o.seed, calibration_people(o.concurrency), datetime.now(UTC).date()
    )
    print("bench: issue: calibrating the rate", file=PROGRESS, flush=True)
    platform = await start_platform(
        bench.directory, o.seed, calibration.population_size, name="platform-calibration"
    )
    try:
        gateway = await start_gateway(
            bench.directory, secrets, platform.address, 1, name="gateway-calibration"
        )
        try:
            issue = LoadOptions(
                gateway.address, token=secrets.bank_token, mix={"issue": 1.0}, timeout=30.0
            )
            applicants = first_calibration_applicants(o.concurrency)
            rates: list[float] = []
            for attempt in range(CALIBRATION_ATTEMPTS):
                measured = await calibration.load(
                    gateway, replace(issue, applicants=applicants), people=applicants
                )
                rates.append(measured.summary.rps)
                # Two runs at least: a stall of the machine in one must not size the bench.
                if attempt >= 1 and not measured.result.applicants.exhausted:
                    break
                if measured.result.applicants.exhausted:
                    applicants *= 2
            else:
                print(
                    "bench: issue: calibration used up its applicants every time; the rate "
                    "may be underestimated (Issue runs say so if they run out)",
                    file=PROGRESS,
                    flush=True,
                )
        finally:
            await gateway.stop()
    finally:
        await platform.stop()
    return replace(bench.sizing, rate=max(rates))


async def _per_rpc(
    bench: Bench,
    target: Target,
    gateway: Server,
    platform: Server,
    token: str,
    baseline: Measured,
    floor: Measured,
) -> dict[str, Any]:
    o = bench.options
    print(f"bench: {target.rpc}: maximum throughput", file=PROGRESS, flush=True)
    # Only Issue uses up people (each can hold one e-SSC). Every applicant of a run is
    # verified in its set-up phase, enough for the calibrated rate (`IssueSizing`); a run
    # that issues faster ends early rather than issue anyone twice, and says so.
    issues = target.rpc == "issue"
    applicants = bench.sizing.max_load_applicants if issues else 0
    gateway_options = LoadOptions(
        gateway.address,
        token=token,
        mix={target.rpc: 1.0},
        holders=o.holders,
        applicants=max(applicants, 1),
        timeout=30.0,
    )
    saturated = await bench.load(gateway, gateway_options, people=applicants)
    half = max(saturated.summary.rps / 2, 1.0)
    if issues:  # within the people sized for it, even if the maximum run ended early
        half = min(half, applicants / (2 * o.duration))
    # Open loop: exactly `half * duration` requests, split over the workers.
    half_people = math.ceil(half * o.duration) + 2 * max(o.load_workers, 1) if issues else 0
    print(
        f"bench: {target.rpc}: half load ({half:.0f}/s), gateway then platform",
        file=PROGRESS,
        flush=True,
    )
    at_half = await bench.load(
        gateway,
        replace(gateway_options, applicants=max(half_people, 1)),
        rate=half,
        people=half_people,
    )
    platform_options = LoadOptions(
        platform.address, service="platform", mix={target.rpc: 1.0}, holders=o.holders, timeout=30.0
    )
    platform_half = await bench.load(platform, platform_options, rate=half, people=half_people)
    floor_half = await _floor_at(bench, target.platform_calls, half)
    cpu_ratio = _ratio(saturated.cpu_per_request, baseline.cpu_per_request)
    # What gRPC alone costs for this shape (one call in, N out), and what the gateway adds.
    floor_ratio = _ratio(floor.cpu_per_request, baseline.cpu_per_request)
    own_us = round((saturated.cpu_per_request - floor.cpu_per_request) * 1e6, 1)
    gateway_p50 = at_half.to_json()["p50_ms"]
    added_ms = round(gateway_p50 - platform_half.to_json()["p50_ms"], 3)
    report: dict[str, Any] = {
        "platform_calls_per_request": target.platform_calls,
        "max_load": saturated.to_json(),
        "half_load": {
            "rate": round(half, 1),
            "gateway": at_half.to_json(),
            "platform": platform_half.to_json(),
            "floor": floor_half.to_json(),
        },
        "cpu_ratio": cpu_ratio,
        "floor_cpu_ratio": floor_ratio,
        "gateway_own_cpu_us_per_request": own_us,
        "throughput_ratio": _ratio(saturated.summary.rps, baseline.summary.rps),
        "added_p50_ms": added_ms,
        # Over what gRPC alone takes for the same shape at the same rate.
        "added_p50_ms_over_floor": round(gateway_p50 - floor_half.to_json()["p50_ms"], 3),
    }
    if issues:
        runs = {"max_load": saturated, "half_load": at_half, "platform_half_load": platform_half}
        report["calibrated_rate"] = bench.sizing.rate  # exact: the sizing derives from it
        report["applicants"] = _applicants(runs)
    return report


def _applicants(runs: dict[str, Measured]) -> dict[str, list[dict[str, Any]]]:
    """What each Issue run did with its applicants; a run that ran out of them, or issued
    anyone twice, is also said on the progress output, as its figures are then short."""
    for name, m in runs.items():
        for result in m.results:
            if result.applicants.exhausted or result.applicants.issued_again:
                print(f"bench: issue {name}: {result.applicants}", file=PROGRESS, flush=True)
    return {name: [result.applicants.to_json() for result in m.results] for name, m in runs.items()}


async def _floor_at(bench: Bench, platform_calls: int, rate: float) -> Measured:
    """The fan-out floor of `platform_calls` calls (an echo server calling a bare echo) at an
    open-loop `rate`: the latency gRPC alone adds for the RPC's shape."""
    upstream = await start_echo(bench.directory)
    try:
        floor = await start_echo(bench.directory, upstream.address, platform_calls)
        try:
            return await bench.load(floor, LoadOptions(floor.address, service="echo"), rate=rate)
        finally:
            await floor.stop()
    finally:
        await upstream.stop()


@asynccontextmanager
async def _window(gateway: Server, operator_token: str, rpc: str) -> AsyncIterator[None]:
    """An announced maintenance window on `rpc`, current while the block runs."""
    now = datetime.now(UTC)
    starts, ends = Timestamp(), Timestamp()
    starts.FromDatetime(now + timedelta(seconds=1))
    ends.FromDatetime(now + timedelta(hours=1))
    async with OperatorClient(
        ClientConfig(gateway.address, token=operator_token, retries=False)
    ) as operator:
        reply = await operator.announce_maintenance(
            opb.AnnounceMaintenanceRequest(
                kind=opb.MAINTENANCE_KIND_PLATFORM,
                starts_at=starts,
                ends_at=ends,
                rpcs=[rpc],
                reason="benchmark of the maintenance fast failure",
                channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
                notice="https://bank.example/notices/maintenance",
            )
        )
        await asyncio.sleep(1.5)  # past its start
        try:
            yield
        finally:
            await operator.cancel_maintenance(
                opb.CancelMaintenanceRequest(window_id=reply.window.window_id)
            )


async def _fast_fail(
    bench: Bench, gateway: Server, secrets: GatewaySecrets, echo: dict[str, Any]
) -> dict[str, Any]:
    print("bench: maintenance fast failure (Verify in a window)", file=PROGRESS, flush=True)
    async with _window(gateway, secrets.operator_token, "Verify"):
        measured = await bench.load(
            gateway,
            LoadOptions(gateway.address, token=secrets.bank_token, mix={"verify": 1.0}),
            rate=bench.options.fast_fail_rate,
        )
    report = measured.to_json()
    report["added_p50_ms"] = round(report["p50_ms"] - echo["p50_ms"], 3)
    report["added_p99_ms"] = round(report["p99_ms"] - echo["p99_ms"], 3)
    return report


async def _workers(
    bench: Bench, platform: Server, secrets: GatewaySecrets, one_worker: dict[str, Measured]
) -> dict[str, Any]:
    """Verify against 2 workers, as `one_worker` was measured against 1: at the same
    open-loop rate (the comparison the target is judged on: equal work, so any change is
    the cost of the second process) and at saturation (where, on 2 cores shared with the
    platform and the load, time-slicing adds its own cost)."""
    print("bench: 2 gateway workers on one port (verify)", file=PROGRESS, flush=True)
    gateway = await start_gateway(bench.directory, secrets, platform.address, 2, name="gateway-2w")
    verify = LoadOptions(gateway.address, token=secrets.bank_token, mix={"verify": 1.0})
    rate = one_worker["same_rate"].result.options.rate
    try:
        two = {
            "same_rate": await bench.load(gateway, verify, rate=rate),
            "saturated": await bench.load(gateway, verify),
        }
    finally:
        await gateway.stop()
    return {
        "rate": rate,
        "one_worker": {k: m.to_json() for k, m in one_worker.items()},
        "two_workers": {k: m.to_json() for k, m in two.items()},
        "cpu_per_request_change": round(
            two["same_rate"].cpu_per_request / one_worker["same_rate"].cpu_per_request - 1, 3
        ),
        "cpu_per_request_change_saturated": round(
            two["saturated"].cpu_per_request / one_worker["saturated"].cpu_per_request - 1, 3
        ),
    }


async def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Runs every measurement; returns the report (see `report.py`)."""
    with tempfile.TemporaryDirectory(prefix="essc-bench-") as scratch:
        directory = options.work_dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        bench = Bench(options, directory)
        baseline = await _baseline(bench)
        base = baseline.pop("_measured")
        floors = baseline.pop("_floors")
        secrets = gateway_secrets(directory, options.suite)
        if "issue" in options.rpcs:
            bench.sizing = await calibrate_issue(bench, secrets)
        needed = bench.sizing.eligible_people(options.rpcs, options.holders, options.repeats)
        bench.population_size = max(
            options.population_size,
            population_size_for(options.seed, needed, datetime.now(UTC).date()),
        )
        platform = await start_platform(directory, options.seed, bench.population_size)
        rpcs: dict[str, Any] = {}
        try:
            gateway = await start_gateway(directory, secrets, platform.address, 1)
            try:
                for rpc in options.rpcs:
                    target = TARGETS[rpc]
                    rpcs[rpc] = await _per_rpc(
                        bench,
                        target,
                        gateway,
                        platform,
                        secrets.bank_token,
                        base,
                        floors[str(target.platform_calls)],
                    )
                fast_fail = await _fast_fail(
                    bench, gateway, secrets, baseline["echo_at_fast_fail_rate"]
                )
                verify = LoadOptions(gateway.address, token=secrets.bank_token, mix={"verify": 1.0})
                saturated = await bench.load(gateway, verify)
                one = {
                    "same_rate": await bench.load(
                        gateway, verify, rate=max(saturated.summary.rps / 2, 1.0)
                    ),
                    "saturated": saturated,
                }
            finally:
                await gateway.stop()
            workers = await _workers(bench, platform, secrets, one)
            cluster: dict[str, Any] = {}
            if "issue" in options.rpcs:
                cluster["issue_on_postgresql"] = await _issue_on_postgresql(
                    bench, platform, secrets, rpcs["issue"]
                )
        finally:
            await platform.stop()
        cluster["replicas_behind_nginx"] = await _replicas_behind_nginx(
            bench, one["same_rate"].result.options.rate
        )
        print("bench: store commit rate (SQLite, PostgreSQL)", file=PROGRESS, flush=True)
        store = await measure_store_rate(
            directory / "store-bench", options.store_seconds, options.store_writers
        )
        async with fresh_database() as database:
            store_pg = await measure_store_rate(
                database, options.store_seconds, options.store_writers
            )
        cluster["store_postgresql"] = store_pg.to_json()
        print("bench: a key incident's re-encryption (SQLite)", file=PROGRESS, flush=True)
        (directory / "keys-bench").mkdir()
        rekey = await measure_rekey(directory / "keys-bench", options.rekey_holders, options.suite)
        print("bench: evidence log (appends with and without it, proofs)", file=PROGRESS)
        evidence = await measure_evidence(
            directory, options.cache_dir, options.store_seconds, options.evidence_log_size
        )
    return _report(
        options,
        bench.population_size,
        baseline,
        rpcs,
        fast_fail,
        workers,
        store,
        cluster,
        evidence,
        rekey,
    )


async def _issue_on_postgresql(
    bench: Bench, platform: Server, secrets: GatewaySecrets, on_sqlite: dict[str, Any]
) -> dict[str, Any]:
    """Issue at maximum load through one gateway on PostgreSQL, as it was on SQLite: the
    gateway process's CPU per request (the database server's own CPU is not in it)."""
    print("bench: issue on PostgreSQL: maximum throughput", file=PROGRESS, flush=True)
    applicants = bench.sizing.max_load_applicants
    async with fresh_database() as database:
        gateway = await start_gateway(
            bench.directory, secrets, platform.address, 1, name="gateway-pg", database=database.dsn
        )
        try:
            options = LoadOptions(
                gateway.address,
                token=secrets.bank_token,
                mix={"issue": 1.0},
                applicants=max(applicants, 1),
                timeout=30.0,
            )
            measured = await bench.load(gateway, options, people=applicants)
        finally:
            await gateway.stop()
    sqlite_cpu = on_sqlite["max_load"]["cpu_us_per_request"]
    return {
        "max_load": measured.to_json(),
        "applicants": _applicants({"max_load_postgresql": measured}),
        "sqlite_cpu_us_per_request": sqlite_cpu,
        "cpu_per_request_change": round(measured.cpu_per_request * 1e6 / sqlite_cpu - 1, 3),
    }


async def _replicas_behind_nginx(bench: Bench, rate: float) -> dict[str, Any]:
    """Verify through nginx (TLS, client certificates) to 1 and to 2 replicas on one
    PostgreSQL database, at the same open-loop rate: the replicas' CPU per request."""
    measured: dict[int, Measured] = {}
    for replicas in (1, 2):
        print(f"bench: {replicas} replica(s) behind nginx (verify)", file=PROGRESS, flush=True)
        ports = (free_port(), free_ports_in_a_row(replicas))
        async with (
            fresh_database() as database,
            running_cluster(
                bench.directory / f"cluster-{replicas}",
                database,
                replicas,
                ports,
                bench.options.seed,
                bench.population_size,
            ) as cluster,
        ):
            verify = LoadOptions(cluster.address, mix={"verify": 1.0}, **tls_of(cluster))
            measured[replicas] = await bench.load(
                ReplicaCpu(cluster, cluster.address),
                verify,
                rate=rate,
            )
    return {
        "rate": rate,
        "one_replica": measured[1].to_json(),
        "two_replicas": measured[2].to_json(),
        "cpu_per_request_change": round(
            measured[2].cpu_per_request / measured[1].cpu_per_request - 1, 3
        ),
    }


def _report(
    options: BenchOptions,
    population_size: int,
    baseline: dict[str, Any],
    rpcs: dict[str, Any],
    fast_fail: dict[str, Any],
    workers: dict[str, Any],
    store: StoreRate,
    cluster: dict[str, Any],
    evidence: dict[str, Any],
    rekey: dict[str, Any],
) -> dict[str, Any]:
    targets = []
    for rpc, r in rpcs.items():
        limit = TARGETS[rpc].cpu_ratio_target
        if limit is not None:
            targets.append(_target(f"CPU per request, {rpc} / echo", limit, r["cpu_ratio"], "x"))
    targets += [
        _target(f"added p50 at half load, {rpc}", 1.0, r["added_p50_ms"], "ms")
        for rpc, r in rpcs.items()
    ]
    targets.append(_target("maintenance fast-fail p99", 1.0, fast_fail["p99_ms"], "ms"))
    targets.append(
        _target(
            "store: issuance records committed durably",
            5000,
            store.records_per_second,
            "/s",
            at_most=False,
        )
    )
    targets.append(
        _target(
            "CPU per request, 2 workers vs 1, same rate",
            0.15,
            round(abs(workers["cpu_per_request_change"]), 3),
            "",
        )
    )
    targets += _cluster_targets(cluster)
    targets += _evidence_targets(evidence)
    return {
        "benchmark": "essc-gateway bench",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": host.python_version(),
            "platform": host.platform(),
        },
        "options": {
            "duration_s": options.duration,
            "concurrency": options.concurrency,
            "load_workers": options.load_workers,
            "population_size": options.population_size,
            "population_size_used": population_size,
            "fast_fail_rate": options.fast_fail_rate,
            "store_writers": options.store_writers,
            "suite": options.suite.name,
            "repeats": options.repeats,
        },
        "baseline": baseline,
        "rpcs": rpcs,
        "maintenance_fast_fail": fast_fail,
        "workers": workers,
        "store": store.to_json(),
        "cluster": cluster,
        "evidence": evidence,
        "keys": rekey,
        "targets": targets,
    }


def _evidence_targets(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *(
            _target(
                f"evidence log: appends with it / without ({store})",
                0.8,
                evidence[f"append_{store}"]["ratio"],
                "",
                at_most=False,
            )
            for store in ("sqlite", "postgresql")
        ),
        _target(
            f"evidence log: inclusion proof in {evidence['inclusion_proof']['log_entries']:,} "
            "entries, p99",
            5.0,
            evidence["inclusion_proof"]["p99_ms"],
            "ms",
        ),
    ]


def _cluster_targets(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    targets = [
        _target(
            "store on PostgreSQL: issuance records committed durably",
            10_000,
            cluster["store_postgresql"]["records_per_second"],
            "/s",
            at_most=False,
        ),
        _target(
            "CPU per request, 2 replicas behind nginx vs 1, same rate",
            0.15,
            round(abs(cluster["replicas_behind_nginx"]["cpu_per_request_change"]), 3),
            "",
        ),
    ]
    if "issue_on_postgresql" in cluster:
        change = cluster["issue_on_postgresql"]["cpu_per_request_change"]
        targets.append(
            _target("CPU per request, Issue on PostgreSQL vs SQLite", 0.25, abs(change), "")
        )
    return targets
