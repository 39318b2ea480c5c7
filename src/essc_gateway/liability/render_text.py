"""Liability reports and statements as JSON (for machines; layout in `render.py`) and as
terminal tables (for staff)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from essc_gateway.liability.model import (
    CLAUSE_DESCRIPTIONS,
    PRIVATE,
    Clause,
    LiabilityReport,
    MonthlyStatement,
)
from essc_gateway.liability.render_common import (
    TABLE_WIDTH,
    cells,
    checkpoint_line,
    iso,
    per_clause,
    record_ref,
    standing_clause,
    table_time,
    visible_affected,
)

# ---------------------------------------------------------------- JSON


def _plain(value: object) -> Any:
    """A model value as JSON data: dataclasses by their fields in declaration order, mappings
    sorted by key, sets as sorted lists, leaves by `_leaf`."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in fields(value)
            if not f.metadata.get(PRIVATE)
        }
    if isinstance(value, Mapping):
        return {str(_leaf(k)): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, frozenset | set | tuple | list):
        items = [_plain(v) for v in value]
        return items if isinstance(value, tuple | list) else sorted(items)
    return _leaf(value)


def _leaf(value: object) -> Any:
    """Times as ISO-8601 (UTC for datetimes), enums by value, the rest as it is."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value.value if isinstance(value, Enum) else value


def report_to_json(report: LiabilityReport) -> str:
    """The report as one JSON object (layout in the module docstring), indented."""
    document: dict[str, Any] = _plain(report)
    for outage, plain in zip(report.outages, document["outages"], strict=True):
        plain["affected"] = visible_affected(outage, report.bank_id)
    for record, plain in zip(report.records, document["records"], strict=True):
        plain["standing_clause"] = standing_clause(report, record).value
        plain["amendments"] = _plain(report.amendments.get(record.request_id, ()))
    for incident, plain in zip(report.incidents, document["incidents"], strict=True):
        plain["clause"] = incident.kind.clause.value
    document["totals"] = per_clause(report.totals, 0)
    document["outage_minutes"] = per_clause(report.outage_minutes, 0.0)
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)


def statement_to_json(statement: MonthlyStatement) -> str:
    """A monthly statement as one JSON object (keys in the module docstring)."""
    document: dict[str, Any] = _plain(statement)
    document["failed_by_clause"] = per_clause(statement.failed_by_clause, 0)
    document["outage_minutes"] = per_clause(statement.outage_minutes, 0.0)
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------- terminal tables


def _one_line(text: str) -> str:
    """`text` with control and format characters (newlines, ESC, bidi overrides) as spaces,
    so that a hostile field cannot move the cursor or break the table."""
    return "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)


def _fit(text: str, width: int) -> str:
    """`text` on one line in exactly `width` terminal cells: cut with "…", or padded."""
    text = _one_line(text)
    if sum(map(cells, text)) > width:
        kept: list[str] = []
        used = 0
        for char in text:
            if used + cells(char) > width - 1:
                break
            kept.append(char)
            used += cells(char)
        text = "".join(kept) + "…"
    return text + " " * (width - sum(map(cells, text)))


def _row(values: Iterable[str], widths: Iterable[int]) -> str:
    return "  ".join(_fit(v, w) for v, w in zip(values, widths, strict=True)).rstrip()


def _line(label: str, value: str) -> str:
    return _fit(f"{label:<11}{value}", TABLE_WIDTH).rstrip()


# Time, RPC, status, reason, clause, outage/window: 19+16+18+27+10+20 cells + 5 gaps of 2 = 120.
# The clause column fits "A16(1)(c)*" (amended).
_RECORD_COLUMNS = (
    ("Time (UTC)", 19),
    ("RPC", 16),
    ("Status", 18),
    ("Reason", 27),
    ("Clause", 10),
    ("Outage/window", 20),
)


def _clause_table(
    failed: Mapping[Clause, int], minutes: Mapping[Clause, float], total_failed: int
) -> list[str]:
    widths = (9, 7, 11, 60)
    lines = [
        _row(("Clause", "Failed", "Outage min", "Description"), widths),
        _row(("-" * w for w in widths), widths),
    ]
    for clause in Clause:
        count = f"{failed.get(clause, 0):>7}"
        mins = f"{minutes.get(clause, 0.0):>11.1f}"
        lines.append(_row((clause.value, count, mins, CLAUSE_DESCRIPTIONS[clause]), widths))
    lines.append(_row(("Total", f"{total_failed:>7}", "", ""), widths))
    return lines


def report_to_table(report: LiabilityReport) -> str:
    """The report as a plain-text table: a header, one line per failed request, then the
    failed requests and outage minutes per clause. No line is wider than `TABLE_WIDTH`."""
    bank = report.bank_id if report.bank_id is not None else "all banks"
    lines = [
        _fit(f"Liability report: {bank}", TABLE_WIDTH).rstrip(),
        _line("Range", f"{table_time(report.since)} .. {table_time(report.until)} UTC"),
        _line("Generated", f"{table_time(report.generated_at)} UTC"),
        _line("Checkpoint", checkpoint_line(report.checkpoint)),
    ]
    if report.complaint is not None:
        due = report.complaint
        lines.append(
            _line(
                "Complaint", f"accepted {due.accepted_on}, due {due.due_on} (A15: 15 working days)"
            )
        )
    widths = [w for _, w in _RECORD_COLUMNS]
    lines += [
        "",
        _row((t for t, _ in _RECORD_COLUMNS), widths),
        _row(("-" * w for w in widths), widths),
    ]
    for record in report.records:
        values = (
            table_time(record.at),
            record.rpc,
            record.status_code,
            record.reason,
            standing_clause(report, record).value
            + ("*" if report.amendments.get(record.request_id) else ""),
            record_ref(record),
        )
        lines.append(_row(values, widths))
    if not report.records:
        lines.append("(no failed requests)")
    if report.amendments:
        lines.append("* amended after it was recorded (see the JSON report for the history)")
    lines.append("")
    lines += _clause_table(report.totals, report.outage_minutes, sum(report.totals.values()))
    return "\n".join(lines) + "\n"


def statement_to_table(statement: MonthlyStatement) -> str:
    """A monthly statement as plain text: the counts, availability, and the clause table."""
    lines = [
        _line("Statement", f"bank {statement.bank_id}, month {statement.month}"),
        _line("Generated", f"{table_time(statement.generated_at)} UTC"),
        _line("Requests", str(statement.requests)),
        _line("Failed", str(statement.failed)),
        # The model keeps availability to six decimals: four of a percentage.
        _line("Available", f"{statement.availability * 100:.4f} %"),
        _line("Checkpoint", checkpoint_line(statement.checkpoint)),
        "",
    ]
    lines += _clause_table(statement.failed_by_clause, statement.outage_minutes, statement.failed)
    return "\n".join(lines) + "\n"
