"""The liability report as one self-contained HTML page for auditors and judges: a summary
per clause, the timeline (`render_timeline.py`), the failed requests with the history of
their clauses, and the periods behind them."""

from __future__ import annotations

from collections.abc import Iterable

from essc_gateway.liability.model import (
    CLAUSE_DESCRIPTIONS,
    Clause,
    LiabilityRecord,
    LiabilityReport,
)
from essc_gateway.liability.render_common import (
    CLAUSE_COLOURS,
    escape,
    record_ref,
    standing_clause,
    table_time,
)
from essc_gateway.liability.render_timeline import bars, timeline

MAX_TABLE_ROWS = 2000
"""Rows of the failed-requests table; the JSON report has them all."""


def _summary(report: LiabilityReport) -> str:
    cards = "".join(
        f'<div class="card" style="border-left-color:{CLAUSE_COLOURS[c]}">'
        f'<div class="clause" style="color:{CLAUSE_COLOURS[c]}">{escape(c.value)}</div>'
        f'<div class="desc">{escape(CLAUSE_DESCRIPTIONS[c])}</div>'
        f'<div class="num">{report.totals.get(c, 0)}</div><div class="unit">failed requests</div>'
        f'<div class="unit">{report.outage_minutes.get(c, 0.0):.1f} outage minutes</div></div>'
        for c in Clause
    )
    facts = [
        ("Failed requests", str(sum(report.totals.values()))),
        ("Outage minutes", f"{sum(report.outage_minutes.values()):.1f} (sum over clauses)"),
    ]
    if report.complaint is not None:
        complaint = report.complaint
        facts.append(
            (
                "Complaint due",
                f"{complaint.due_on} (accepted {complaint.accepted_on}; A15: 15 working days)",
            )
        )
    facts.append(("Generated", f"{table_time(report.generated_at)} UTC"))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    rows += f"<dt>Checkpoint</dt><dd><pre><code>{escape(report.checkpoint)}</code></pre></dd>"
    return f'<section class="summary"><div class="cards">{cards}</div><dl>{rows}</dl></section>'


def _history(report: LiabilityReport, record: LiabilityRecord) -> str:
    """The record's own clause and each amendment after it, for the table."""
    amendments = report.amendments.get(record.request_id, ())
    if not amendments:
        return ""
    steps = [f"recorded {record.clause.value}"] + [
        f"{a.previous_clause.value} → {a.clause.value}: incident {a.incident_id} declared by "
        f"{a.declared_by} {table_time(a.declared_at)} UTC"
        for a in amendments
    ]
    return '<div class="history">' + "<br>".join(escape(step) for step in steps) + "</div>"


def _badge(clause: Clause) -> str:
    colour = CLAUSE_COLOURS[clause]
    return f'<span class="badge" style="background:{colour}">{escape(clause.value)}</span>'


def _table(css: str, head: Iterable[str], rows: Iterable[tuple[Clause, Iterable[str]]]) -> str:
    """A table whose cells are HTML already escaped; each row edged in its clause colour."""
    body = "".join(
        f'<tr class="{css}" style="border-left:5px solid {CLAUSE_COLOURS[clause]}">'
        + "".join(f"<td>{cell}</td>" for cell in cells)
        + "</tr>"
        for clause, cells in rows
    )
    heads = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font:14px/1.45 system-ui,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;margin:24px 32px;
color:#1c2833}h1{font-size:22px;margin:0}h2{font-size:17px;margin:24px 0 8px}
.range{color:#566573;margin:2px 0 16px}
.summary{border:1px solid #d5d8dc;border-radius:8px;padding:12px}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}
.card{border:1px solid #d5d8dc;border-left:6px solid;border-radius:6px;padding:6px 10px}
.clause{font-weight:700}.desc,.unit{font-size:12px;color:#566573}.desc{min-height:2.8em}
.num{font-size:26px;font-weight:700}dl{display:grid;grid-template-columns:max-content 1fr;
gap:3px 14px;margin:12px 0 0}dt{font-weight:600}dd{margin:0}
code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.lane-title{font-size:12px;font-weight:600}svg text{font-size:11px}
.note{color:#566573;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}th{background:#f4f6f8}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e8e8;vertical-align:top}
.badge{color:#fff;border-radius:4px;padding:1px 6px;font-weight:600;white-space:nowrap}
.history{font-size:11px;color:#566573;margin-top:3px}pre{margin:0}
"""


def report_to_html(report: LiabilityReport) -> str:
    """The report as one self-contained HTML page: a summary per clause, a timeline (inline
    SVG) of outages, maintenance windows, incidents and failed requests, then the tables.

    Every text from the model is escaped. Raises ValueError unless `until` is after `since`.
    """
    bank = report.bank_id if report.bank_id is not None else "all banks"
    span = f"{table_time(report.since)} to {table_time(report.until)} UTC"
    records = _table(
        "record-row",
        (
            "Time (UTC)",
            "RPC",
            "Status",
            "Reason",
            "Clause",
            "Outage / window / incident",
            "Trace",
            "Evidence",
        ),
        (
            (
                standing_clause(report, r),
                (
                    escape(table_time(r.at)),
                    escape(r.rpc),
                    escape(r.status_code),
                    escape(r.reason),
                    _badge(standing_clause(report, r)) + _history(report, r),
                    escape(record_ref(r, long=True)),
                    f"<code>{escape(r.trace_id)}</code>",
                    "<br>".join(
                        f"<code>{escape(k)}={escape(v)}</code>"
                        for k, v in sorted(r.evidence.items())
                    ),
                ),
            )
            for r in report.records[:MAX_TABLE_ROWS]
        ),
    )
    if len(report.records) > MAX_TABLE_ROWS:
        records += (
            f'<p class="note">The first {MAX_TABLE_ROWS} of {len(report.records)} failed '
            "requests; the JSON report lists them all.</p>"
        )
    outages, windows, incidents = bars(report)
    periods = _table(
        "period-row",
        ("What", "From (UTC)", "To (UTC)", "Clause", "Details"),
        (
            (
                b.clause,
                (
                    escape(b.label),
                    escape(table_time(b.start)),
                    "ongoing" if b.ongoing else escape(table_time(b.end)),
                    _badge(b.clause),
                    escape(b.title),
                ),
            )
            for b in (*outages, *windows, *incidents)
        ),
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Liability report: {escape(bank)}, {escape(span)}</title><style>{_CSS}</style>"
        f'</head><body><h1>Liability report: {escape(bank)}</h1><p class="range">{escape(span)}'
        f"</p>{_summary(report)}"
        f'<h2>Timeline</h2>{timeline(report)}<p class="note">Bars and dots take their clause\'s '
        "colour. Dashed outline: a part of a window not announced in advance. Faded: earlier "
        "versions of a window, and cancelled windows. Past 1000 failed requests, bars count "
        "them per time bin. "
        "Ongoing outages run to the end of the range. Hover for details.</p>"
        f"<h2>Failed requests ({len(report.records)})</h2>{records}"
        f"<h2>Outages, maintenance windows and incidents</h2>{periods}</body></html>\n"
    )
