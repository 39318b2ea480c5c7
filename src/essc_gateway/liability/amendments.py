"""Amendment records: a finding declared after the failures it covers (an incident, usually
declared once it has begun) re-attributes them without touching them. Each amendment names
the new clause, the incident, who declared it and when; it is an entry of the evidence log of
its own, and reports show the amended clause with its history. The rule is the classifier's
(`incident_applies`, the incident declared last wins), so a record amended and a record
classified after the declaration get the same clause."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from essc_gateway.clock import Clock
from essc_gateway.errors import PlatformFacts
from essc_gateway.liability.classify import incident_applies
from essc_gateway.liability.model import (
    Amendment,
    AmendmentCause,
    Clause,
    Incident,
    LiabilityRecord,
)
from essc_gateway.liability.ports import LedgerStore


def standing(record: LiabilityRecord, amendments: Sequence[Amendment]) -> tuple[Clause, str | None]:
    """The clause and incident a record stands under after its amendments (in order)."""
    if not amendments:
        return record.clause, record.incident_id
    last = amendments[-1]
    return last.clause, last.incident_id


def amendments_for(
    incident: Incident,
    records: Sequence[LiabilityRecord],
    existing: Mapping[str, Sequence[Amendment]],
    declared_at_of: Mapping[str, datetime],
    now: datetime,
) -> list[Amendment]:
    """The amendments `incident` calls for among `records`. `declared_at_of` gives the
    declaration time of incidents records already stand under: a record under an incident
    declared later keeps it."""
    made = []
    for record in records:
        if not incident.covers(record.arrival) or not incident_applies(
            record.reason, PlatformFacts.from_evidence(record.evidence)
        ):
            continue
        clause, incident_id = standing(record, existing.get(record.request_id, ()))
        if incident_id == incident.incident_id:
            continue
        if incident_id is not None and declared_at_of.get(incident_id, now) > incident.declared_at:
            continue
        made.append(
            Amendment(
                amendment_id=f"am-{uuid.uuid4().hex[:16]}",
                request_id=record.request_id,
                clause=incident.kind.clause,
                previous_clause=clause,
                cause=AmendmentCause.INCIDENT_DECLARED,
                incident_id=incident.incident_id,
                declared_by=incident.declared_by,
                declared_at=incident.declared_at,
                amended_at=now,
            )
        )
    return made


class Amender:
    def __init__(self, store: LedgerStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def amend_for(self, incident: Incident) -> list[Amendment]:
        """Appends the amendments `incident` calls for; idempotent (one amendment per record
        and incident, whichever replica writes it first)."""
        records = await self._store.liability_records_arrived(incident.starts_at, incident.ends_at)
        if not records:
            return []
        existing = await self._store.amendments([r.request_id for r in records])
        declared = {i.incident_id: i.declared_at for i in await self._store.incidents()}
        made = amendments_for(incident, records, existing, declared, self._clock.now())
        return await self._store.append_amendments(made) if made else []
