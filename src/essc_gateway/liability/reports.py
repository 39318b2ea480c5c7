"""Liability reports by bank and time range or by complaint, and monthly statements."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime

from essc_gateway.clock import Clock
from essc_gateway.domain.maintenance import GATEWAY_RPCS, MaintenanceWindow
from essc_gateway.evidence.checkpoints import Checkpointer
from essc_gateway.liability.amendments import standing
from essc_gateway.liability.holder_records import liability_records_of
from essc_gateway.liability.incidents import IncidentBook
from essc_gateway.liability.model import (
    Amendment,
    Clause,
    Complaint,
    LiabilityRecord,
    LiabilityReport,
    MonthlyStatement,
    Outage,
    WindowPart,
    window_clause,
)
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.liability.work_calendar import WorkCalendar
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.service.vault import Vault

# Failures of the service itself (as opposed to refusals of a request) count against
# availability.
_SERVICE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED"})


def _union_minutes(
    spans: Iterable[tuple[datetime, datetime]], since: datetime, until: datetime
) -> float:
    """Minutes covered by the union of `spans`, clipped to [since, until)."""
    clipped = sorted((max(start, since), min(end, until)) for start, end in spans if end > since)
    total, reach = 0.0, since
    for start, end in clipped:
        begin = max(start, reach)
        if end > begin:
            total += (end - begin).total_seconds()
            reach = end
    return total / 60


class Reports:
    def __init__(
        self,
        store: LedgerStore,
        calendar: MaintenanceCalendar,
        incidents: IncidentBook,
        outages: OutageTracker,
        vault: Vault,
        clock: Clock,
        work_calendar: WorkCalendar,
        checkpointer: Checkpointer,
    ) -> None:
        self._store = store
        self._calendar = calendar
        self._incidents = incidents
        self._outages = outages
        self._vault = vault
        self._clock = clock
        self._work_calendar = work_calendar
        self._checkpointer = checkpointer

    async def _outages_between(self, since: datetime, until: datetime) -> list[Outage]:
        await self._outages.flush()  # this replica's counts of open outages, then read
        stored = await self._store.outages_between(since, until)
        # An outage during a declared incident falls under the incident's clause (A16(1)(c/d)).
        return sorted((self._incidents.place(o) for o in stored), key=lambda o: o.started_at)

    def _window_parts(self, window: MaintenanceWindow) -> list[WindowPart]:
        """A window's time in parts: each part has the clause of its own notice."""
        history = self._calendar.history(window.window_id)
        cuts = sorted(
            {window.starts_at, window.ends_at}
            | {t for w in history for t in (w.starts_at, w.ends_at)
               if window.starts_at < t < window.ends_at}
        )  # fmt: skip
        # Downtime has one clause per moment, not one per RPC: judge the parts on an RPC
        # every version covered (the window's own), else on one the latest covers.
        covered = sorted(window.rpcs or GATEWAY_RPCS)
        rpc = next((r for r in covered if all(v.covers_rpc(r) for v in history)), covered[0])
        spans: list[WindowPart] = []
        for begin, end in itertools.pairwise(cuts):
            notice = self._calendar.notice(window.window_id, rpc, begin, window.version)
            in_advance = notice is not None and notice.in_advance
            clause = window_clause(window.kind, in_advance)
            if spans and spans[-1].clause is clause:  # one part per clause in a row
                spans[-1] = replace(spans[-1], ends_at=end)
            else:
                spans.append(WindowPart(window.window_id, window.version, begin, end, clause))
        return spans

    def _downtime(
        self,
        outages: Iterable[Outage],
        windows: Iterable[MaintenanceWindow],
        since: datetime,
        until: datetime,
    ) -> dict[Clause, float]:
        """Minutes of downtime per clause: the union of the periods, so that three operations
        down at once (or an outage inside a window) count once, not three times."""
        periods: dict[Clause, list[tuple[datetime, datetime]]] = {}
        for outage in outages:
            periods.setdefault(outage.clause, []).append(
                (outage.started_at, outage.ended_at or until)
            )
        for window in windows:
            if window.cancelled_at is None:
                for part in self._window_parts(window):
                    periods.setdefault(part.clause, []).append((part.starts_at, part.ends_at))
        minutes = {
            clause: round(_union_minutes(spans, since, until), 3)
            for clause, spans in periods.items()
        }
        return {clause: value for clause, value in minutes.items() if value > 0}

    async def report(
        self,
        since: datetime,
        until: datetime,
        bank_id: str | None = None,
        holder_id: str | None = None,
        complaint_accepted_on: date | None = None,
    ) -> LiabilityReport:
        """A bank's failed requests in [since, until), or one holder's (a complaint)."""
        records = await liability_records_of(
            self._store, self._vault, since, until, bank_id, holder_id
        )
        amendments = await self._amendments(records)
        outages = await self._outages_between(since, until)
        windows = self._calendar.between(since, until)
        versions = [v for w in windows for v in self._calendar.history(w.window_id)]
        complaint = None
        if complaint_accepted_on is not None:
            complaint = Complaint(
                accepted_on=complaint_accepted_on,
                due_on=self._work_calendar.complaint_due(complaint_accepted_on),
            )
        return LiabilityReport(
            generated_at=self._clock.now(),
            since=since,
            until=until,
            bank_id=bank_id,
            records=tuple(records),
            outages=tuple(outages),
            windows=tuple(versions),
            incidents=tuple(self._incidents.between(since, until)),
            checkpoint=(await self._checkpointer.publish()).note.decode(),
            complaint=complaint,
            totals=_totals(records, amendments),
            outage_minutes=self._downtime(outages, windows, since, until),
            amendments={k: tuple(v) for k, v in amendments.items()},
            window_parts=tuple(
                part for w in windows if w.cancelled_at is None for part in self._window_parts(w)
            ),
        )

    async def _amendments(self, records: list[LiabilityRecord]) -> dict[str, list[Amendment]]:
        if not records:
            return {}
        return await self._store.amendments([r.request_id for r in records])

    async def monthly(self, bank_id: str, month: str) -> MonthlyStatement:
        year, number = (int(part) for part in month.split("-"))
        since = datetime(year, number, 1, tzinfo=UTC)
        until = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
        records: list[LiabilityRecord] = await self._store.liability_records(since, until, bank_id)
        amendments = await self._amendments(records)
        requests, failed = await self._store.request_counts(bank_id, month)
        service_failures = sum(
            1 for r in records if r.status_code in _SERVICE_CODES and r.clause is not Clause.A16_2
        )
        availability = 1.0 if requests == 0 else max(0.0, 1 - service_failures / requests)
        outages = await self._outages_between(since, until)
        return MonthlyStatement(
            bank_id=bank_id,
            month=month,
            generated_at=self._clock.now(),
            requests=requests,
            failed=failed,
            availability=round(availability, 6),
            failed_by_clause=_totals(records, amendments),
            outage_minutes=self._downtime(
                outages, self._calendar.between(since, until), since, until
            ),
            checkpoint=(await self._checkpointer.publish()).note.decode(),
        )


def _totals(
    records: Iterable[LiabilityRecord], amendments: dict[str, list[Amendment]]
) -> dict[Clause, int]:
    """Failed requests per clause, each under the clause that stands after its amendments."""
    return dict(Counter(standing(r, amendments.get(r.request_id, ()))[0] for r in records))
