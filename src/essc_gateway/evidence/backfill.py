"""What a store kept before it had an evidence log, put into the log once, when the log is
first used: every window version, incident, outage (opened, and closed if it ended), liability
record (from the old hash-chained rows, as they stand) and the request counts so far. From
then on every fact is logged as it is written; nothing earlier is left outside."""

from __future__ import annotations

from collections.abc import Sequence

from essc_gateway.domain.maintenance import MaintenanceWindow
from essc_gateway.evidence.entries import (
    Entry,
    counts_entry,
    incident_entry,
    outage_closed_entry,
    outage_opened_entry,
    record_entry,
    window_entry,
)
from essc_gateway.liability.model import Incident, LiabilityRecord, Outage

Counts = tuple[str, str, int, int]
"""(bank, day, requests, failed)."""


def backfill_entries(
    windows: Sequence[MaintenanceWindow],
    incidents: Sequence[Incident],
    outages: Sequence[tuple[Outage, str]],
    records: Sequence[LiabilityRecord],
    counts: Sequence[Counts],
) -> list[Entry]:
    """The entries, records last (in their old order: their log indices follow it)."""
    entries = [window_entry(w) for w in sorted(windows, key=lambda w: (w.recorded_at, w.version))]
    entries += [incident_entry(i) for i in sorted(incidents, key=lambda i: i.declared_at)]
    for outage, holder in sorted(outages, key=lambda o: o[0].started_at):
        entries.append(outage_opened_entry(outage, holder))
        if outage.ended_at is not None:
            entries.append(outage_closed_entry(outage))
    entries += [counts_entry(*c) for c in counts]
    entries += [record_entry(r) for r in records]
    return entries
