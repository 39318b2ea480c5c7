"""Operator-declared incidents (A16(1)(c) force majeure, A16(1)(d) attacks, power, telecom).
Incidents are usually declared after they begin: the failures they cover that were already
recorded are re-attributed by amendments (`amendments.py`), on every replica that learns of
the incident, so that no replica's records are missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from essc_gateway.clock import Clock
from essc_gateway.errors import FieldViolation, InvalidRequest
from essc_gateway.liability.model import Incident, IncidentKind, Outage
from essc_gateway.liability.ports import LedgerStore

log = logging.getLogger("essc_gateway.ledger")

IncidentLearned = Callable[[Incident], Awaitable[object]]
RECHECK_AFTER = 3.0
"""Seconds after which the records of a newly learned incident are looked at again: a
record classified just before the incident was learned may commit after the first look."""
RECENT = timedelta(days=1)
"""At start, incidents declared this recently are looked at again (a replica may have
stopped between declaring one and amending its records)."""


class IncidentBook:
    """Incidents in memory (few, and read on every failure) and in the store."""

    def __init__(
        self, store: LedgerStore, clock: Clock, on_learned: IncidentLearned | None = None
    ) -> None:
        """Args:
        on_learned: called with each incident this replica learns of after its first load
            (declared here or on another replica): amends the records it covers.
        """
        self._store = store
        self._clock = clock
        self._incidents: list[Incident] = []
        self._loaded = False
        self.on_learned = on_learned
        self._rechecks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        known = {i.incident_id for i in self._incidents}
        self._incidents = await self._store.incidents()
        if self._loaded:
            learned = [i for i in self._incidents if i.incident_id not in known]
        else:  # at start: the recent ones again, in case their amending was cut short
            since = self._clock.now() - RECENT
            learned = [i for i in self._incidents if i.declared_at >= since]
        self._loaded = True
        for incident in learned:
            await self._learned(incident)

    async def _learned(self, incident: Incident) -> None:
        """Amends the records `incident` covers now, and once more a little later."""
        if self.on_learned is None:
            return
        try:
            await self.on_learned(incident)
        except Exception as error:  # every replica amends too, and again after a while
            log.error("records of incident not amended: %s", type(error).__name__)
        task = asyncio.create_task(self._recheck(incident), name="essc-incident-recheck")
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def _recheck(self, incident: Incident) -> None:
        await asyncio.sleep(RECHECK_AFTER)
        if self.on_learned is None:
            return
        try:
            await self.on_learned(incident)
        except Exception as error:
            log.error("records of incident not amended: %s", type(error).__name__)

    async def close(self) -> None:
        """Stops the pending second looks (before the store closes)."""
        for task in list(self._rechecks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def at(self, when: datetime) -> Incident | None:
        """The incident covering `when` that was declared last, if any."""
        covering = [i for i in self._incidents if i.covers(when)]
        return max(covering, key=lambda i: i.declared_at, default=None)

    def place(self, outage: Outage) -> Outage:
        """An outage that began during a declared incident falls under its clause."""
        incident = self.at(outage.started_at)
        return outage if incident is None else replace(outage, clause=incident.kind.clause)

    def all(self) -> list[Incident]:
        return sorted(self._incidents, key=lambda i: i.starts_at)

    def between(self, since: datetime, until: datetime) -> list[Incident]:
        return [i for i in self._incidents if i.starts_at < until and i.ends_at > since]

    async def declare(
        self,
        kind: IncidentKind,
        starts_at: datetime,
        ends_at: datetime,
        description: str,
        declared_by: str,
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
            declared_by=declared_by,
        )
        await self._store.save_incident(incident)
        self._incidents.append(incident)
        await self._learned(incident)
        return incident
