"""`essc-gateway bench`: runs the benchmark, prints the table, writes the JSON report; and
`essc-gateway soak`: a long mixed load, watching the gateway for growth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from essc_gateway.bench import BenchOptions, BenchSetupError, format_table, run_bench
from essc_gateway.bench.soak import WINDOW, SoakOptions, run_soak
from essc_gateway.keys.suites import Suite
from essc_gateway.loadtest import LoadAborted, SetupError

DEFAULT_OUTPUT = Path("bench/results.json")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BenchOptions()
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON report"
    )
    parser.add_argument(
        "--compare", type=Path, help="a earlier JSON report (e.g. bench/reference.json)"
    )
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="seconds of each measured phase"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=defaults.concurrency,
        help="requests in flight at maximum load",
    )
    parser.add_argument(
        "--load-workers",
        type=int,
        default=defaults.load_workers,
        help="processes sending the load",
    )
    parser.add_argument(
        "--rpcs", default=",".join(defaults.rpcs), help="the RPCs measured, comma-separated"
    )
    parser.add_argument(
        "--population-size",
        type=int,
        default=defaults.population_size,
        help="the platform's population at least (more when the calibrated Issue rate needs it)",
    )
    parser.add_argument(
        "--holders", type=int, default=defaults.holders, help="card holders made for Query"
    )
    parser.add_argument(
        "--fast-fail-rate",
        type=float,
        default=defaults.fast_fail_rate,
        help="requests per second refused in a window",
    )
    parser.add_argument(
        "--store-seconds",
        type=float,
        default=defaults.store_seconds,
        help="seconds of each store measurement",
    )
    parser.add_argument(
        "--store-writers",
        type=int,
        default=defaults.store_writers,
        help="concurrent writers of the store measurement",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=defaults.repeats,
        help="runs of each measured load (the report gives their median and spread)",
    )
    parser.add_argument("--work-dir", type=Path, help="keep servers' stores and logs here")
    parser.add_argument(
        "--suite",
        choices=["aes", "sm"],
        default="aes",
        help="the bank's key suite: AES-256-GCM + HMAC-SHA256, or SM4-GCM + HMAC-SM3",
    )
    parser.add_argument(
        "--evidence-log-size",
        type=int,
        default=defaults.evidence_log_size,
        help="entries of the synthetic evidence log inclusion proofs are timed in",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=defaults.cache_dir,
        help="where the synthetic evidence log is kept between runs",
    )


async def run_bench_command(ns: argparse.Namespace) -> int:
    options = BenchOptions(
        duration=ns.duration,
        concurrency=ns.concurrency,
        load_workers=ns.load_workers,
        rpcs=tuple(r.strip() for r in ns.rpcs.split(",") if r.strip()),
        population_size=ns.population_size,
        holders=ns.holders,
        fast_fail_rate=ns.fast_fail_rate,
        store_seconds=ns.store_seconds,
        store_writers=ns.store_writers,
        repeats=ns.repeats,
        work_dir=ns.work_dir,
        evidence_log_size=ns.evidence_log_size,
        cache_dir=ns.cache_dir,
        suite=Suite.named(ns.suite),
    )
    try:
        report = await run_bench(options)
    except (BenchSetupError, LoadAborted, SetupError, ValueError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    ns.output.parent.mkdir(parents=True, exist_ok=True)
    ns.output.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    if ns.compare is not None and ns.compare.exists():
        print(compare(json.loads(ns.compare.read_text()), report))
    print(f"report written to {ns.output}")
    return 0


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Each target's measure before and after."""
    old = {t["name"]: t["measured"] for t in before.get("targets", [])}
    lines = ["compared with the earlier report:"]
    for target in after.get("targets", []):
        name = target["name"]
        lines.append(f"  {name:<48} {old.get(name, '-')!s:>10} -> {target['measured']!s:>10}")
    return "\n".join(lines)


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SoakOptions()
    parser.add_argument(
        "--output", type=Path, default=Path("bench/soak.json"), help="the JSON report"
    )
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="seconds of the mixed load"
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="requests per second (open loop)"
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=defaults.sample_every,
        help="seconds between two samples of the gateway's memory, files and tasks",
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=defaults.warm_up,
        help=f"seconds after which growth counts ({2 * WINDOW} samples or more must follow it)",
    )
    parser.add_argument("--work-dir", type=Path, help="keep servers' stores and logs here")


async def run_soak_command(ns: argparse.Namespace) -> int:
    """Exit 0 when memory, files and tasks held steady after the warm-up, 1 otherwise."""
    options = SoakOptions(
        duration=ns.duration,
        rate=ns.rate,
        sample_every=ns.sample_every,
        warm_up=ns.warm_up,
        work_dir=ns.work_dir,
    )
    try:
        report = await run_soak(options)
    except (BenchSetupError, LoadAborted, SetupError, ValueError) as error:
        print(f"soak: {error}", file=sys.stderr)
        return 1
    ns.output.parent.mkdir(parents=True, exist_ok=True)
    ns.output.write_text(json.dumps(report, indent=2) + "\n")
    verdict = report["verdict"]
    print(
        f"soak: {report['requests']} requests in {report['load_seconds']:.0f} s "
        f"({report['status_codes']}), p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms"
    )
    steady = bool(verdict["steady"])
    if "after_warm_up" in verdict:
        print(f"after warm-up: {verdict['after_warm_up']} (medians)")
        print(f"at the end:    {verdict['at_end']} (medians)")
        print(f"RSS growth {verdict['rss_growth']:+.1%}")
    print(
        ("steady" if steady else "NOT STEADY, too short, unread or ended early (see the report)")
        + f"; report written to {ns.output}"
    )
    return 0 if steady else 1
