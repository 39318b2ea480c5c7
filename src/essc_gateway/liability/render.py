"""Liability reports as text: JSON for machines, a terminal table for staff, one HTML page
for auditors and judges. Pure functions of the model: no I/O, no clock, nothing added that is
not in it. Times are UTC; a naive datetime is refused rather than guessed.

JSON of a report: the model's fields, in the model's order, every key always present::

    generated_at, since, until   ISO-8601 UTC, e.g. "2026-11-06T08:00:00Z"
    bank_id                      string, or null: all banks
    records                      [{seq, request_id, trace_id, bank_id, rpc, at, status_code,
                                   reason, clause, evidence{}, outage_id, window_id,
                                   incident_id, holder_token, arrived_at, deadline_at,
                                   attempts[], window_version, log_index,
                                   standing_clause (after amendments), amendments[]}]
    outages                      [{outage_id, scope, started_at, ended_at (null while it
                                   lasts), reached, last_failure_at, status_counts{},
                                   affected{bank: failed requests}, clause}]
    windows                      every version: [{window_id, kind, starts_at, ends_at, rpcs[],
                                   reason, announced_at, amended_at, cancelled_at, version,
                                   announcement{channels[], notice, announced_by} or null}]
    incidents                    [{incident_id, kind, starts_at, ends_at, declared_at,
                                   description, declared_by, clause}]
    checkpoint                   the signed checkpoint of the evidence log (a C2SP note)
    complaint                    {"accepted_on", "due_on"} ISO dates (A15), or null
    totals                       {clause value: failed requests}, every clause, 0 when none
    outage_minutes               {clause value: minutes within [since, until)}, every clause
    amendments                   {request_id: [{amendment_id, clause, previous_clause, cause,
                                   incident_id, declared_by, declared_at, ...}]}
    window_parts                 [{window_id, version, starts_at, ends_at, clause}]

Null for an absent optional; mappings sorted by key; a bank's report lists in an outage's
`affected` that bank only. Clauses are written by value ("A16(1)(b)", "BANK"). A monthly
statement's JSON has bank_id, month, generated_at, requests, failed, availability (0..1),
failed_by_clause, outage_minutes (both every clause), checkpoint.
"""

from __future__ import annotations

from essc_gateway.liability.model import LiabilityReport, MonthlyStatement
from essc_gateway.liability.render_common import CLAUSE_COLOURS, TABLE_WIDTH
from essc_gateway.liability.render_html import report_to_html
from essc_gateway.liability.render_text import (
    report_to_json,
    report_to_table,
    statement_to_json,
    statement_to_table,
)

__all__ = [
    "CLAUSE_COLOURS",
    "TABLE_WIDTH",
    "Rendered",
    "render_report",
    "render_statement",
    "report_to_html",
    "report_to_json",
    "report_to_table",
    "statement_to_json",
    "statement_to_table",
]

Rendered = tuple[str, str]
"""(content type, body)."""


def render_report(report: LiabilityReport, fmt: str = "json") -> Rendered:
    """A report in one of "json", "table" or "html", with its content type."""
    if fmt == "html":
        return "text/html", report_to_html(report)
    if fmt == "table":
        return "text/plain", report_to_table(report)
    return "application/json", report_to_json(report)


def render_statement(statement: MonthlyStatement, fmt: str = "json") -> Rendered:
    """A monthly statement as "json" or "table", with its content type."""
    if fmt == "table":
        return "text/plain", statement_to_table(statement)
    return "application/json", statement_to_json(statement)
