"""What the liability report renderers share: clause colours, UTC times, the clause that
stands for a record, references. Pure functions: no I/O, no clock."""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from essc_gateway.liability.model import Clause, LiabilityRecord, LiabilityReport, Outage

CLAUSE_COLOURS: Mapping[Clause, str] = {
    Clause.A16_1_A: "#2471a3",  # blue: announced maintenance
    Clause.A16_1_B: "#7d3c98",  # purple: the national platform
    Clause.A16_1_C: "#138d75",  # green: force majeure
    Clause.A16_1_D: "#b9770e",  # amber: third party
    Clause.A16_2: "#5d6d7e",  # grey: the holder
    Clause.BANK: "#c0392b",  # red: the bank pays
}
"""One fixed colour per clause, used by the HTML summary, timeline and table alike."""

TABLE_WIDTH = 120
"""No line of a terminal table is wider than this many cells."""

_N = TypeVar("_N", int, float)


def utc(at: datetime) -> datetime:
    """`at` in UTC; raises ValueError for a naive datetime (its zone would be a guess)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime in a report: {at!r}")
    return at.astimezone(UTC)


def iso(at: datetime) -> str:
    return utc(at).isoformat().replace("+00:00", "Z")


def per_clause(values: Mapping[Clause, _N], zero: _N) -> dict[str, _N]:
    """Every clause, in declaration order, so that consumers see stable keys."""
    return {clause.value: values.get(clause, zero) for clause in Clause}


def visible_affected(outage: Outage, bank_id: str | None) -> dict[str, int]:
    """The outage's failed requests by bank, as the report's reader may see them.

    Outages are platform-wide; a bank's report shows its own count only, never another
    bank's (Parties: a bank must never see another bank's data).
    """
    if bank_id is None:
        return dict(sorted(outage.affected.items()))
    return {bank_id: outage.affected[bank_id]} if bank_id in outage.affected else {}


def standing_clause(report: LiabilityReport, record: LiabilityRecord) -> Clause:
    """The clause that stands for a record: its last amendment's, else its own."""
    amendments = report.amendments.get(record.request_id, ())
    return amendments[-1].clause if amendments else record.clause


def checkpoint_line(note: str) -> str:
    """ "size N, root <base64>" from a signed checkpoint note."""
    lines = note.splitlines()
    return f"size {lines[1]}, root {lines[2]}" if len(lines) > 2 else note


def record_ref(record: LiabilityRecord, long: bool = False) -> str:
    """The outage, window and incident a record is tied to: "o:o-1 w:w-7", or with `long`
    "outage o-1, window w-7"."""
    refs = [
        ("outage", record.outage_id),
        ("window", record.window_id),
        ("incident", record.incident_id),
    ]
    if long:
        return ", ".join(f"{tag} {ref}" for tag, ref in refs if ref)
    return " ".join(f"{tag[0]}:{ref}" for tag, ref in refs if ref)


def cells(char: str) -> int:
    # CJK reasons are common (the agreement is Chinese): they take two terminal cells.
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def table_time(at: datetime) -> str:
    """`at` as "2026-11-06 08:00:00" in UTC."""
    return utc(at).strftime("%Y-%m-%d %H:%M:%S")


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)
