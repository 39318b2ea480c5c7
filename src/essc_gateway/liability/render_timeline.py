"""The HTML report's timeline (inline SVG): outages, every version of each window (the
latest in its parts, each in its clause's colour), incidents, and the failed requests as
dots, or past a thousand as counts per time bin, on the axis of the data's own range."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time

from essc_gateway.domain.maintenance import MaintenanceWindow
from essc_gateway.liability.model import Clause, LiabilityReport, window_clause
from essc_gateway.liability.render_common import (
    CLAUSE_COLOURS,
    cells,
    escape,
    standing_clause,
    table_time,
    utc,
)

# Timeline geometry in SVG user units; the SVG scales to the page width.
_SVG_W, _X0, _X1 = 1240, 190, 1220
_ROW, _BAR, _DOT_ROW = 22, 16, 14
_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
_LATE = 'stroke="#641e16" stroke-width="2" stroke-dasharray="5 3"'
_EARLIER = 'fill-opacity="0.15" stroke="#566573" stroke-dasharray="2 2"'
_MAX_DOTS = 1000
"""Beyond this many failed requests the timeline shows counts per time bin, not dots."""
_BINS = 160


class _Axis:
    """Maps times in [since, until] to x in [_X0, _X1]; times outside are clamped."""

    def __init__(self, since: datetime, until: datetime) -> None:
        self.since, self.until = utc(since), utc(until)
        self.span = (self.until - self.since).total_seconds()
        if self.span <= 0:
            raise ValueError("a report's until must be after its since")

    def x(self, at: datetime) -> float:
        share = (utc(at) - self.since).total_seconds() / self.span
        return _X0 + min(max(share, 0.0), 1.0) * (_X1 - _X0)

    def ticks(self) -> list[tuple[float, str]]:
        """At most about ten round times (UTC) with their labels."""
        fallback = math.ceil(self.span / 86400 / 10) * 1440
        step = next((m for m in _STEPS_MIN if self.span / 60 / m <= 10), fallback)
        midnight = datetime.combine(self.since.date(), dt_time(), UTC)
        at = midnight + timedelta(minutes=step) * math.ceil(
            (self.since - midnight) / timedelta(minutes=step)
        )
        ticks = []
        while at <= self.until:
            day_only = step >= 1440 or (at.hour, at.minute) == (0, 0)
            long = self.span > 86400
            fmt = "%m-%d" if day_only else "%m-%d %H:%M" if long else "%H:%M"
            ticks.append((self.x(at), at.strftime(fmt)))
            at += timedelta(minutes=step)
        return ticks


@dataclass(frozen=True, slots=True)
class Bar:
    css: str
    ref: str
    start: datetime
    end: datetime
    clause: Clause
    label: str
    title: str
    extra: str = ""
    ongoing: bool = False
    fill: str | None = None
    """Overrides the clause's colour (an earlier version of a window has no clause)."""


def bars(report: LiabilityReport) -> tuple[list[Bar], list[Bar], list[Bar]]:
    outages = [
        Bar(
            "outage-bar",
            o.outage_id,
            o.started_at,
            o.ended_at or report.until,
            o.clause,
            f"{o.outage_id} {o.scope}"
            + ("" if o.reached else " · unreachable")
            + (" · ongoing" if o.ended_at is None else ""),
            f"Outage {o.outage_id} of {o.scope} [{o.clause.value}]: {table_time(o.started_at)} to "
            f"{table_time(o.ended_at) + ' UTC' if o.ended_at else 'now (ongoing)'}; platform "
            f"{'answered' if o.reached else 'not reached'}; "
            + ", ".join(f"{k} x{v}" for k, v in sorted(o.status_counts.items())),
            ongoing=o.ended_at is None,
        )
        for o in report.outages
    ]
    windows = _window_bars(report)
    incidents = [
        Bar(
            "incident-bar",
            i.incident_id,
            i.starts_at,
            i.ends_at,
            i.kind.clause,
            f"{i.incident_id} {i.kind.value}",
            f"Incident {i.incident_id} {i.kind.value} [{i.kind.clause.value}]: "
            f"{table_time(i.starts_at)} to {table_time(i.ends_at)} UTC, declared "
            f"{table_time(i.declared_at)} UTC; {i.description}",
        )
        for i in report.incidents
    ]
    return outages, windows, incidents


def _window_bars(report: LiabilityReport) -> list[Bar]:
    """Each window's latest version in its parts (each part in its own clause's colour),
    and its earlier versions as faded outlines labelled with their version."""
    latest: dict[str, MaintenanceWindow] = {}
    for w in report.windows:
        if w.window_id not in latest or latest[w.window_id].version < w.version:
            latest[w.window_id] = w
    bars = []
    for w in report.windows:
        rpcs = ", ".join(sorted(w.rpcs)) or "all RPCs"
        notice = w.announcement
        published = (
            f"announced on {', '.join(sorted(c.value for c in notice.channels))} by "
            f"{notice.announced_by}"
            if notice is not None and notice.channels
            else "not announced publicly"
        )
        title = (
            f"{w.kind.value} maintenance {w.window_id} v{w.version}: "
            f"{table_time(w.starts_at)} to {table_time(w.ends_at)} UTC, recorded "
            f"{table_time(w.recorded_at)} UTC ({published}); {rpcs}; {w.reason}"
        )
        if w is not latest[w.window_id] or w.cancelled_at is not None:
            bars.append(
                Bar(
                    "window-version-bar",
                    f"{w.window_id}/v{w.version}",
                    w.starts_at,
                    w.ends_at,
                    window_clause(w.kind, in_advance=False),
                    f"{w.window_id} v{w.version}" + (" · cancelled" if w.cancelled_at else ""),
                    title,
                    _EARLIER,
                    fill="#aab7b8",
                )
            )
            continue
        for part in (p for p in report.window_parts if p.window_id == w.window_id):
            late = part.clause is Clause.BANK
            bars.append(
                Bar(
                    "window-bar",
                    f"{w.window_id}/v{w.version}",
                    part.starts_at,
                    part.ends_at,
                    part.clause,
                    f"{w.window_id} v{w.version} · "
                    + ("not in advance" if late else "announced in advance"),
                    f"{title}; this part [{part.clause.value}]",
                    _LATE if late else "",
                )
            )
    return bars


def _lane(title: str, bars: list[Bar], axis: _Axis, y: float) -> tuple[list[str], float]:
    """One lane of bars; overlapping bars (and their labels) go to further rows."""
    rows: list[float] = []  # the right-most x used in each row so far
    front: list[str] = []
    for bar in sorted(bars, key=lambda b: utc(b.start)):
        x = axis.x(bar.start)
        w = max(axis.x(bar.end) - x, 2.0)
        text_w = 6.4 * sum(map(cells, bar.label))
        if text_w + 8 <= w:
            tx, anchor, ink, lo, hi = x + 4, "start", "#fff", x, x + w
        elif x + w + 4 + text_w <= _SVG_W:
            tx, anchor, ink, lo, hi = x + w + 4, "start", "#1c2833", x, x + w + 4 + text_w
        else:
            tx, anchor, ink, lo, hi = x - 4, "end", "#1c2833", x - 4 - text_w, x + w
        row = next((i for i, right in enumerate(rows) if right + 6 <= lo), len(rows))
        rows[row : row + 1] = [hi]
        top = y + 6 + row * _ROW
        fill = bar.fill or CLAUSE_COLOURS[bar.clause]
        front.append(
            f'<g><title>{escape(bar.title)}</title><rect class="{bar.css}" '
            f'data-ref="{escape(bar.ref)}" '
            f'x="{x:.1f}" y="{top:.1f}" '
            f'width="{w:.1f}" height="{_BAR}" rx="3" fill="{fill}" '
            f'{bar.extra}/><text x="{tx:.1f}" y="{top + 12:.1f}" text-anchor="{anchor}" '
            f'fill="{ink}">{escape(bar.label)}</text></g>'
        )
    height = max(len(rows), 1) * _ROW + 10
    back = [
        f'<rect x="0" y="{y:.1f}" width="{_SVG_W}" height="{height}" fill="#f4f6f8"/>',
        f'<text class="lane-title" x="10" y="{y + 19:.1f}">{escape(title)}</text>',
    ]
    if not bars:
        back.append(f'<text x="{_X0 + 6}" y="{y + 19:.1f}" fill="#85929e">none</text>')
    return back + front, y + height + 6


def _records_lane(report: LiabilityReport, axis: _Axis, y: float) -> tuple[list[str], float]:
    """Failed requests, one row per clause so that the colours do not hide each other: a dot
    each, or beyond `_MAX_DOTS` a bar per time bin whose height grows with its count."""
    clauses = list(Clause)
    height = len(clauses) * _DOT_ROW + 10
    parts = [
        f'<rect x="0" y="{y:.1f}" width="{_SVG_W}" height="{height}" fill="#f4f6f8"/>',
        f'<text class="lane-title" x="10" y="{y + 19:.1f}">Failed requests</text>',
    ]
    mid = {c: y + 5 + i * _DOT_ROW + _DOT_ROW / 2 for i, c in enumerate(clauses)}
    for clause, cy in mid.items():
        parts.append(
            f'<text class="clause-label" x="{_X0 - 8}" y="{cy + 3.5:.1f}" text-anchor="end" '
            f'fill="{CLAUSE_COLOURS[clause]}">{escape(clause.value)}</text><line x1="{_X0}" '
            f'x2="{_X1}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="#e5e8e8"/>'
        )
    if len(report.records) > _MAX_DOTS:
        return parts + _record_bins(report, axis, mid), y + height + 6
    for r in report.records:
        clause = standing_clause(report, r)
        title = f"{table_time(r.at)} UTC {r.rpc} {r.status_code} [{clause.value}]: {r.reason}"
        parts.append(
            f'<circle class="record-mark" cx="{axis.x(r.arrival):.1f}" cy="{mid[clause]:.1f}" '
            f'r="4.5" fill="{CLAUSE_COLOURS[clause]}" stroke="#fff"><title>{escape(title)}</title>'
            "</circle>"
        )
    return parts, y + height + 6


def _record_bins(report: LiabilityReport, axis: _Axis, mid: Mapping[Clause, float]) -> list[str]:
    counts: Counter[tuple[Clause, int]] = Counter()
    for r in report.records:
        share = (axis.x(r.arrival) - _X0) / (_X1 - _X0)
        counts[(standing_clause(report, r), min(int(share * _BINS), _BINS - 1))] += 1
    most = max(counts.values())
    width = (_X1 - _X0) / _BINS
    seconds = axis.span / _BINS
    parts = []
    for (clause, index), count in sorted(counts.items(), key=lambda item: item[0][1]):
        tall = 3 + (_DOT_ROW - 4) * math.sqrt(count / most)
        start = axis.since + timedelta(seconds=index * seconds)
        title = (
            f"{count} failed request(s) [{clause.value}] from {table_time(start)} UTC "
            f"over {seconds:.0f} s"
        )
        parts.append(
            f'<rect class="record-bin" data-count="{count}" data-clause="{escape(clause.value)}" '
            f'x="{_X0 + index * width:.1f}" y="{mid[clause] - tall / 2:.1f}" '
            f'width="{max(width - 0.5, 1):.1f}" height="{tall:.1f}" '
            f'fill="{CLAUSE_COLOURS[clause]}"><title>{escape(title)}</title></rect>'
        )
    return parts


def _data_range(report: LiabilityReport) -> tuple[datetime, datetime]:
    """The times the report's data spans within [since, until] (the whole range if it has
    none), a little wider so that nothing sits on the edge."""
    moments = [r.arrival for r in report.records] + [r.at for r in report.records]
    for o in report.outages:
        moments += [o.started_at, o.ended_at or o.last_failure_at]
    for w in report.windows:
        moments += [w.starts_at, w.ends_at]
    for i in report.incidents:
        moments += [i.starts_at, i.ends_at]
    since, until = utc(report.since), utc(report.until)
    inside = [m for m in map(utc, moments) if since <= m <= until]
    if not inside:
        return since, until
    low, high = min(inside), max(inside)
    pad = max((high - low) * 0.03, timedelta(minutes=1))
    return max(low - pad, since), min(high + pad, until)


def timeline(report: LiabilityReport) -> str:
    axis = _Axis(*_data_range(report))
    outages, windows, incidents = bars(report)
    y, lanes = 6.0, []
    lanes_of = (("Outages", outages), ("Maintenance", windows), ("Incidents", incidents))
    for title, lane_bars in lanes_of:
        parts, y = _lane(title, lane_bars, axis, y)
        lanes += parts
    parts, y = _records_lane(report, axis, y)
    lanes += parts
    grid = [
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{y + 4:.1f}" stroke="#aab7b8" '
        f'stroke-dasharray="2 3"/><text x="{x:.1f}" y="{y + 20:.1f}" '
        f'text-anchor="middle">{escape(label)}</text>'
        for x, label in axis.ticks()
    ]
    axis_line = (
        f'<line class="axis" x1="{_X0}" x2="{_X1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#1c2833"/>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="100%" '
        f'viewBox="0 0 {_SVG_W} {y + 28:.0f}" role="img" aria-label="Timeline">'
        + "".join(lanes + grid)
        + axis_line
        + "</svg>"
    )
