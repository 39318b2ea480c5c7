"""A self-contained HTML page of a load run: summary tables, latency over time and the
histogram as inline SVG (no scripts, no external assets)."""

from __future__ import annotations

import math
from html import escape

from essc_gateway.loadtest.result import LoadResult
from essc_gateway.loadtest.stats import OK, PERCENTILES, Summary, percentile_name

_WIDTH, _HEIGHT, _PAD = 900, 320, 50
_MAX_POINTS = 5000  # scatter points drawn; more would only make the page heavy


def render_html(result: LoadResult) -> str:
    """The page, as one string."""
    o = result.options
    rows = [*result.by_rpc.items(), ("overall", result.overall)]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8"/>',
            f"<title>Load against {escape(o.target)}</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>",
            "</head><body>",
            f"<h1>Load against {escape(o.target)}</h1>",
            f"<p>{escape(o.mode)} loop, {o.process_count} worker(s), started "
            f"{escape(result.started_at.isoformat())}, {result.duration:.2f} s, "
            f"{result.holders} holder(s).</p>",
            "<h2>Summary (latency in ms)</h2>",
            _table(rows),
            "<h2>Latency over time</h2>",
            _latency_svg(result),
            "<h2>Histogram</h2>",
            _histogram_svg(result.overall),
            "</body></html>",
            "",
        ]
    )


def _table(rows: list[tuple[str, Summary]]) -> str:
    names = ["min", "mean", *(percentile_name(p) for p in PERCENTILES), "max"]
    head = "".join(f"<th>{h}</th>" for h in ["rpc", "count", "ok", "errors", "rps", *names])
    body = []
    for rpc, summary in rows:
        latency = summary.to_json()["latency_ms"]
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(summary.status_codes.items()))
        cells = [
            escape(rpc),
            str(summary.count),
            str(summary.ok),
            str(summary.errors),
            f"{summary.rps:.1f}",
            *(f"{latency[n]:.2f}" for n in names),
        ]
        body.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{escape(codes)}</td></tr>"
        )
    return f"<table><tr>{head}<th>status codes</th></tr>{''.join(body)}</table>"


def _log_scale(low: float, high: float) -> tuple[float, float]:
    lo = math.floor(math.log10(max(low, 1e-6)))
    hi = math.ceil(math.log10(max(high, 1e-6)))
    return lo, max(hi, lo + 1)


def _latency_svg(result: LoadResult) -> str:
    """Each request (a sample of them) by due time and latency, log scale; p99 per second."""
    samples = result.samples
    n = len(samples)
    plot_w, plot_h = _WIDTH - 2 * _PAD, _HEIGHT - 2 * _PAD
    parts = [_svg_open()]
    if n:
        t_max = max(*samples.starts, 1e-9)
        lo, hi = _log_scale(min(samples.latencies), max(samples.latencies))

        def x(t: float) -> float:
            return _PAD + plot_w * max(t, 0.0) / t_max

        def y(latency: float) -> float:
            fraction = (math.log10(max(latency, 10**lo)) - lo) / (hi - lo)
            return _HEIGHT - _PAD - plot_h * fraction

        for decade in range(int(lo), int(hi) + 1):
            value = 10.0**decade
            parts.append(
                f'<line x1="{_PAD}" x2="{_WIDTH - _PAD}" y1="{y(value):.1f}" '
                f'y2="{y(value):.1f}" stroke="#eee"/>'
                f'<text x="{_PAD - 4}" y="{y(value) + 4:.1f}" font-size="10" '
                f'text-anchor="end">{_ms_label(value)}</text>'
            )
        step = max(1, n // _MAX_POINTS)
        for i in range(0, n, step):
            colour = "#1f77b4" if samples.codes[i] == OK else "#d62728"
            parts.append(
                f'<circle cx="{x(samples.starts[i]):.1f}" cy="{y(samples.latencies[i]):.1f}" '
                f'r="1.5" fill="{colour}" fill-opacity="0.5"/>'
            )
        points = " ".join(
            f"{x(s.start + 0.5):.1f},{y(s.p99):.1f}" for s in result.timeline if s.count
        )
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="#ff7f0e"/>')
        parts.append(
            f'<text x="{_WIDTH - _PAD}" y="{_HEIGHT - 10}" font-size="11" text-anchor="end">'
            f"time (s, 0-{t_max:.1f}); blue ok, red error, orange p99 per second</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _histogram_svg(summary: Summary) -> str:
    parts = [_svg_open()]
    buckets = summary.histogram
    if buckets:
        peak = max(b.count for b in buckets) or 1
        width = (_WIDTH - 2 * _PAD) / len(buckets)
        for i, bucket in enumerate(buckets):
            height = (_HEIGHT - 2 * _PAD) * bucket.count / peak
            left = _PAD + i * width
            parts.append(
                f'<rect x="{left:.1f}" y="{_HEIGHT - _PAD - height:.1f}" '
                f'width="{width * 0.9:.1f}" height="{height:.1f}" fill="#1f77b4">'
                f"<title>{_ms_label(bucket.low)}-{_ms_label(bucket.high)}: "
                f"{bucket.count}</title></rect>"
                f'<text x="{left + width / 2:.1f}" y="{_HEIGHT - _PAD + 14}" font-size="9" '
                f'text-anchor="middle">{_ms_label(bucket.low)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _svg_open() -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}">'
    )


def _ms_label(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"
