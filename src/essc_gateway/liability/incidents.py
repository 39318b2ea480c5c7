"""Operator-declared incidents (A16(1)(c) force majeure, A16(1)(d) attacks, power, telecom)."""

from __future__ import annotations

import uuid
from datetime import datetime

from essc_gateway.clock import Clock
from essc_gateway.errors import FieldViolation, InvalidRequest
from essc_gateway.liability.model import Incident, IncidentKind
from essc_gateway.liability.ports import LedgerStore


class IncidentBook:
    """Incidents in memory (few, and read on every failure) and in the store."""

    def __init__(self, store: LedgerStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._incidents: list[Incident] = []

    async def load(self) -> None:
        self._incidents = await self._store.incidents()

    def at(self, when: datetime) -> Incident | None:
        """The incident covering `when` that was declared last, if any."""
        covering = [i for i in self._incidents if i.covers(when)]
        return max(covering, key=lambda i: i.declared_at, default=None)

    def all(self) -> list[Incident]:
        return sorted(self._incidents, key=lambda i: i.starts_at)

    def between(self, since: datetime, until: datetime) -> list[Incident]:
        return [i for i in self._incidents if i.starts_at < until and i.ends_at > since]

    async def declare(
        self, kind: IncidentKind, starts_at: datetime, ends_at: datetime, description: str
    ) -> Incident:
        problems = []
        if ends_at <= starts_at:
            problems.append(FieldViolation("ends_at", "must be after starts_at", "INVALID"))
        if not description.strip() or len(description) > 1000:
            problems.append(FieldViolation("description", "must be 1-1000 characters", "INVALID"))
        if problems:
            raise InvalidRequest(problems)
        incident = Incident(
            incident_id=f"in-{uuid.uuid4().hex[:16]}",
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            declared_at=self._clock.now(),
            description=description.strip(),
        )
        await self._store.save_incident(incident)
        self._incidents.append(incident)
        return incident
