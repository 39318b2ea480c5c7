"""Reports of a load run: ghz-like text, JSON, a CSV summary and (see `html_report`) HTML."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from essc_gateway.loadtest.html_report import render_html
from essc_gateway.loadtest.result import LoadResult
from essc_gateway.loadtest.stats import PERCENTILES, Summary, percentile_name

CSV_COLUMNS = (
    "rpc",
    "count",
    "ok",
    "errors",
    "duration_s",
    "rps",
    "min_ms",
    "mean_ms",
    *(f"{percentile_name(p)}_ms" for p in PERCENTILES),
    "max_ms",
    "status_codes",
)
OVERALL = "overall"


def write_reports(result: LoadResult) -> None:
    """Writes the JSON, CSV and HTML reports that the options ask for."""
    options = result.options
    if options.json_path is not None:
        write_json(result, options.json_path)
    if options.csv_path is not None:
        write_csv(result, options.csv_path)
    if options.html_path is not None:
        options.html_path.write_text(render_html(result), encoding="utf-8")


def write_json(result: LoadResult, path: Path) -> None:
    """The JSON report (`LoadResult.to_json`)."""
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")


def write_csv(result: LoadResult, path: Path) -> None:
    """A row per RPC, then one `overall`; status codes as `CODE:n;CODE:n`."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        rows = [*result.by_rpc.items(), (OVERALL, result.overall)]
        for rpc, summary in rows:
            latency = summary.to_json()["latency_ms"]
            writer.writerow(
                [
                    rpc,
                    summary.count,
                    summary.ok,
                    summary.errors,
                    f"{summary.duration:.4f}",
                    f"{summary.rps:.2f}",
                    latency["min"],
                    latency["mean"],
                    *(latency[percentile_name(p)] for p in PERCENTILES),
                    latency["max"],
                    ";".join(f"{c}:{n}" for c, n in sorted(summary.status_codes.items())),
                ]
            )


def format_text(result: LoadResult) -> str:
    """The ghz-like text report: overall, then per RPC."""
    o = result.options
    load = f"rate {o.rate:g}/s" if o.mode == "open" else f"concurrency {o.concurrency}"
    lines = [
        "",
        f"Load against {o.target}: {o.mode} loop, {load}, {o.process_count} worker(s), "
        f"{result.holders} holder(s)",
    ]
    if result.setup_failures:
        lines.append(f"  set-up failures: {result.setup_failures}")
    applicants = result.applicants
    if applicants.exhausted:
        lines.append("  ended early: no fresh applicant left for issue (raise --population-size)")
    if applicants.verified_during_load:
        lines.append(f"  applicants verified during the load: {applicants.verified_during_load}")
    if applicants.issued_again:
        lines.append(f"  issued again (ALREADY_HELD): {applicants.issued_again}")
    lines += _summary_lines("Overall", result.overall, histogram=True)
    for rpc, summary in result.by_rpc.items():
        lines += _summary_lines(rpc, summary, histogram=False)
    return "\n".join(lines)


def _summary_lines(title: str, s: Summary, *, histogram: bool) -> list[str]:
    ms = s.to_json()["latency_ms"]
    lines = [
        "",
        f"{title}:",
        f"  Count:    {s.count}  (ok {s.ok}, errors {s.errors})",
        f"  Duration: {s.duration:.2f} s",
        f"  RPS:      {s.rps:.2f}",
        "  Latency (ms): " + "  ".join(f"{name} {value:.2f}" for name, value in ms.items()),
    ]
    if histogram and s.histogram:
        lines.append("  Histogram (ms):")
        peak = max(b.count for b in s.histogram) or 1
        for bucket in s.histogram:
            bar = "∎" * round(40 * bucket.count / peak)
            lines.append(
                f"    {bucket.low * 1000:10.3f} - {bucket.high * 1000:10.3f} "
                f"[{bucket.count:>7}] |{bar}"
            )
    lines.append("  Status codes:")
    lines += [f"    [{code}] {n}" for code, n in sorted(s.status_codes.items())]
    return lines
