"""The benchmark's report as a table for people; the JSON is the report itself."""

from __future__ import annotations

from typing import Any


def format_table(report: dict[str, Any]) -> str:
    """Per RPC: throughput, CPU per request and its ratio to echo, p50s; then the targets."""
    echo = report["baseline"]["echo"]
    lines = [
        f"baseline echo: {echo['rps']:.0f} req/s, {echo['cpu_us_per_request']:.0f} us CPU/request",
        "",
        f"{'rpc':<13}{'max req/s':>10}{'CPU us/req':>11}{'x echo':>8}{'floor x':>8}"
        f"{'own us':>8}{'spread':>8}{'thru x':>8}{'half/s':>8}{'gw p50':>9}{'pf p50':>9}"
        f"{'added':>9}{'floor50':>9}{'over fl':>9}",
    ]
    for rpc, r in report["rpcs"].items():
        half = r["half_load"]
        lines.append(
            f"{rpc:<13}{r['max_load']['rps']:>10.0f}{r['max_load']['cpu_us_per_request']:>11.0f}"
            f"{r['cpu_ratio']:>8.2f}{r['floor_cpu_ratio']:>8.2f}"
            f"{r['gateway_own_cpu_us_per_request']:>8.0f}"
            f"{r['max_load']['cpu_spread']:>8.1%}"
            f"{r['throughput_ratio']:>8.2f}{half['rate']:>8.0f}"
            f"{half['gateway']['p50_ms']:>8.2f}m{half['platform']['p50_ms']:>8.2f}m"
            f"{r['added_p50_ms']:>8.2f}m{half['floor']['p50_ms']:>8.2f}m"
            f"{r['added_p50_ms_over_floor']:>8.2f}m"
        )
    fast = report["maintenance_fast_fail"]
    store = report["store"]
    workers = report["workers"]
    echo_at_rate = report["baseline"]["echo_at_fast_fail_rate"]
    floors = ", ".join(
        f"{calls} call(s) {floor['cpu_us_per_request']:.0f} us"
        for calls, floor in report["baseline"]["fan_out_floor"].items()
    )
    lines += [
        "",
        "floor x: gRPC alone for the RPC's shape (one call in, its platform calls out, "
        f"nothing else): {floors}; own us: the gateway's CPU per request above that floor",
        f"each figure: the median of {report['options']['repeats']} runs; spread: (max - min) "
        "/ median of their CPU per request; floor50: the floor's p50 at the same half load, "
        "over fl: the gateway's p50 above it",
        f"maintenance fast-fail: {fast['rps']:.0f} req/s, p50 {fast['p50_ms']:.2f} ms, "
        f"p99 {fast['p99_ms']:.2f} ms, {fast['cpu_us_per_request']:.0f} us CPU/request; "
        f"over echo at that rate (p50 {echo_at_rate['p50_ms']:.2f}, "
        f"p99 {echo_at_rate['p99_ms']:.2f} ms): +{fast['added_p50_ms']:.2f} / "
        f"+{fast['added_p99_ms']:.2f} ms",
        f"store: {store['records_per_second']:.0f} issuance records/s "
        f"({store['writers']} writers, synchronous={store['synchronous']})",
        f"workers: verify CPU/request at {workers['rate']:.0f}/s, 1 worker "
        f"{workers['one_worker']['same_rate']['cpu_us_per_request']:.0f} us, "
        f"2 workers {workers['two_workers']['same_rate']['cpu_us_per_request']:.0f} us "
        f"({workers['cpu_per_request_change']:+.1%}); saturated "
        f"{workers['one_worker']['saturated']['rps']:.0f} vs "
        f"{workers['two_workers']['saturated']['rps']:.0f} req/s "
        f"({workers['cpu_per_request_change_saturated']:+.1%} CPU/request)",
    ]
    lines += _cluster_lines(report["cluster"])
    if "keys" in report:
        keys = report["keys"]
        lines.append(
            f"key incident ({keys['suite']}): {keys['rekeyed']} holders re-encrypted at "
            f"{keys['records_per_second']:.0f}/s; reading a holder's data p99 "
            f"{keys['read_p99_ms_idle']:.2f} ms idle, {keys['read_p99_ms_during']:.2f} ms during"
        )
    lines += [
        "",
        "targets:",
    ]
    for target in report["targets"]:
        mark = "met" if target["met"] else "NOT MET"
        lines.append(
            f"  {target['name']:<48} {target['target']:>12}  {target['measured']:>10}  {mark}"
        )
    return "\n".join(lines)


def _cluster_lines(cluster: dict[str, Any]) -> list[str]:
    nginx = cluster["replicas_behind_nginx"]
    store = cluster["store_postgresql"]
    lines = [
        f"PostgreSQL store: {store['records_per_second']:.0f} issuance records/s "
        f"({store['writers']} writers, {store['synchronous']})",
        f"behind nginx (verify at {nginx['rate']:.0f}/s, replicas' CPU/request): 1 replica "
        f"{nginx['one_replica']['cpu_us_per_request']:.0f} us, 2 replicas "
        f"{nginx['two_replicas']['cpu_us_per_request']:.0f} us "
        f"({nginx['cpu_per_request_change']:+.1%})",
    ]
    if "issue_on_postgresql" in cluster:
        issue = cluster["issue_on_postgresql"]
        lines.append(
            f"issue on PostgreSQL: {issue['max_load']['rps']:.0f} req/s, "
            f"{issue['max_load']['cpu_us_per_request']:.0f} us CPU/request (gateway process) "
            f"vs {issue['sqlite_cpu_us_per_request']:.0f} us on SQLite "
            f"({issue['cpu_per_request_change']:+.1%})"
        )
    return lines
