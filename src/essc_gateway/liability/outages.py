"""The outage tracker: watches every platform attempt, opens an outage when an operation
stops answering as it should and closes it at the first good answer. The outage starts at the
first failure of the run, so its times match the truth to within one request."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, Tracer

from essc_gateway.clock import Clock
from essc_gateway.liability.model import Clause, Outage
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.upstream.outcomes import AttemptFailure

OutageClosed = Callable[[Outage, list[object]], None]


class OutageStore(LedgerStore, Protocol):
    """The ledger's tables and the cluster's one-open-outage-per-operation."""

    async def open_outage(self, outage: Outage, holder: str) -> Outage: ...

    async def add_to_outage(
        self,
        outage_id: str,
        status_counts: Mapping[str, int],
        affected: Mapping[str, int],
        last_failure_at: datetime,
        reached: bool,
        holder: str,
    ) -> None: ...

    async def close_outage(self, outage_id: str, ended_at: datetime) -> bool: ...

    async def close_outages_held_by_none_of(self, live_replicas: frozenset[str]) -> int: ...


@dataclass
class _Run:
    """Failures in a row of one operation seen by this replica; part of an outage once there
    are enough of them (the cluster's one outage of the operation, whoever opened it)."""

    first_failure_at: datetime
    last_failure_at: datetime
    failures: int = 0
    reached: bool = False
    status_counts: Counter[str] = field(default_factory=Counter)
    affected: Counter[str] = field(default_factory=Counter)
    links: list[object] = field(default_factory=list)
    outage: Outage | None = None
    """The shared outage this run joined (its id, start and clause are the cluster's)."""
    unreported_status: Counter[str] = field(default_factory=Counter)
    unreported_affected: Counter[str] = field(default_factory=Counter)


class OutageTracker:
    def __init__(
        self,
        store: OutageStore,
        clock: Clock,
        threshold: int = 3,
        on_closed: OutageClosed | None = None,
        max_links: int = 128,
        replica_id: str = "local",
    ) -> None:
        """Args:
        threshold: failed attempts in a row that make an outage.
        on_closed: told of each closed outage with the span contexts of affected requests.
        replica_id: this replica, named as the holder of the outages it sees.
        """
        self._store = store
        self._clock = clock
        self._threshold = threshold
        self._on_closed = on_closed
        self._max_links = max_links
        self._replica_id = replica_id
        self._runs: dict[str, _Run] = {}
        self._cluster: dict[str, Outage] = {}
        """Open outages of the cluster by operation, as last loaded (`sync`): a replica
        that has not seen enough failures itself still names the cluster's outage."""
        self._unreported_elsewhere: dict[str, Counter[str]] = {}
        """Requests of this replica counted against a cluster outage it has no run of."""

    def _outage(self, run: _Run, ended_at: datetime | None) -> Outage:
        assert run.outage is not None
        return replace(
            run.outage,
            ended_at=ended_at,
            reached=run.outage.reached or run.reached,
            last_failure_at=max(run.outage.last_failure_at, run.last_failure_at),
            status_counts=dict(run.status_counts),
            affected=dict(run.affected),
        )

    async def close_stale(self, live_replicas: frozenset[str] = frozenset()) -> None:
        """At start: outages held by no live replica (a stopped or crashed cluster, or a dead
        replica) end at their last failure, the best evidence there is; those a live replica
        holds stay open. The new process watches the platform afresh."""
        await self._store.close_outages_held_by_none_of(live_replicas)

    async def attempt_done(self, operation: str, failure: AttemptFailure | None) -> None:
        """Told of every attempt: None for a good answer (a business refusal included)."""
        now = self._clock.now()
        run = self._runs.get(operation)
        if failure is None:
            if run is not None:
                del self._runs[operation]
                if run.outage is not None:
                    await self._report(run)
                    closed = await self._store.close_outage(run.outage.outage_id, now)
                    self._cluster.pop(operation, None)
                    if closed and self._on_closed is not None:
                        self._on_closed(self._outage(run, ended_at=now), run.links)
                    return
            elsewhere = self._cluster.pop(operation, None)
            if elsewhere is not None:
                # Another replica's outage, answered well here first: it ends now, not when
                # its holder next calls the platform.
                await self._store.close_outage(elsewhere.outage_id, now)
            return
        sent_at = failure.sent_at or now  # a hang fails when it ends; it began when sent
        if run is None:
            run = self._runs[operation] = _Run(first_failure_at=sent_at, last_failure_at=now)
        run.failures += 1
        run.first_failure_at = min(run.first_failure_at, sent_at)
        run.last_failure_at = now
        run.reached = run.reached or failure.reached
        status = "NOT_SENT" if not failure.reached else failure.code.name
        run.status_counts[status] += 1
        run.unreported_status[status] += 1
        if run.outage is None and run.failures >= self._threshold:
            candidate = Outage(
                outage_id=f"out-{uuid.uuid4().hex[:16]}",
                scope=operation,
                started_at=run.first_failure_at,
                ended_at=None,
                reached=run.reached,
                last_failure_at=now,
                status_counts={},
                affected={},
                # A16(1)(d) when the platform was never reached, else a platform-side fault.
                clause=Clause.A16_1_B if run.reached else Clause.A16_1_D,
            )
            # One outage per operation for the cluster: whoever opens it first sets its start
            # and clause, and every replica's records name that one.
            joined = await self._store.open_outage(candidate, self._replica_id)
            self._cluster[operation] = joined
            if self._runs.get(operation) is not run:
                # A good answer came while it opened: the platform is back, so it ends now
                # rather than stay open with no run behind it.
                await self._store.close_outage(joined.outage_id, self._clock.now())
                return
            run.outage = joined

    def current(self, operation: str) -> Outage | None:
        """The open outage of `operation`: this replica's run of it, or the cluster's."""
        run = self._runs.get(operation)
        if run is None or run.outage is None:
            return self._cluster.get(operation)
        return self._outage(run, ended_at=None)

    def affect(self, operation: str, bank_id: str, span_context: object | None) -> str | None:
        """Counts a failed request against the open outage of `operation`; its id, if any."""
        run = self._runs.get(operation)
        if run is None or run.outage is None:
            elsewhere = self._cluster.get(operation)
            if elsewhere is None:
                return None
            self._unreported_elsewhere.setdefault(elsewhere.outage_id, Counter())[bank_id] += 1
            return elsewhere.outage_id
        run.affected[bank_id] += 1
        run.unreported_affected[bank_id] += 1
        if span_context is not None and len(run.links) < self._max_links:
            run.links.append(span_context)
        return run.outage.outage_id

    def open_outages(self) -> list[Outage]:
        return [self._outage(run, None) for run in self._runs.values() if run.outage is not None]

    def open_operations(self) -> frozenset[str]:
        """Operations with an open outage, this replica's or the cluster's (no I/O)."""
        mine = {op for op, run in self._runs.items() if run.outage is not None}
        return frozenset(mine | set(self._cluster))

    async def sync(self) -> None:
        """Another replica closed an outage (the platform answered it well): this replica's
        run of it ends too, and its next failures start afresh."""
        opened = await self._store.open_outages()
        self._cluster = {outage.scope: outage for outage in opened}
        still_open = {outage.outage_id for outage in opened}
        for operation, run in list(self._runs.items()):
            if run.outage is None or run.outage.outage_id in still_open:
                continue
            if self._runs.get(operation) is run:  # not replaced while the list was read
                del self._runs[operation]
                await self._report(run)  # its counts still belong to the closed outage

    async def _report(self, run: _Run) -> None:
        if run.outage is None or not (run.unreported_status or run.unreported_affected):
            return
        status, affected = run.unreported_status, run.unreported_affected
        run.unreported_status, run.unreported_affected = Counter(), Counter()
        try:
            await self._store.add_to_outage(
                run.outage.outage_id,
                status,
                affected,
                run.last_failure_at,
                run.reached,
                self._replica_id,
            )
        except BaseException:  # reported next time instead (the store away, a cancel)
            run.unreported_status.update(status)
            run.unreported_affected.update(affected)
            raise

    async def flush(self) -> None:
        """Adds this replica's counts of open outages to the store (periodically and on
        shutdown: they stay open there for the other replicas)."""
        for run in list(self._runs.values()):
            await self._report(run)
        elsewhere, self._unreported_elsewhere = self._unreported_elsewhere, {}
        for outage_id, affected in elsewhere.items():
            outage = next((o for o in self._cluster.values() if o.outage_id == outage_id), None)
            if outage is None:
                continue  # closed meanwhile: its counts were the others'
            try:
                await self._store.add_to_outage(
                    outage_id, {}, affected, outage.last_failure_at, outage.reached,
                    self._replica_id,
                )  # fmt: skip
            except BaseException:
                self._unreported_elsewhere.setdefault(outage_id, Counter()).update(affected)
                raise


def trace_outage(tracer: Tracer, outage: Outage, links: list[object]) -> None:
    """An outage is a trace of its own: a span from its start to its end, linked to the spans
    of the requests it affected, so a dashboard shows the outage and its victims."""
    span = tracer.start_span(
        f"outage {outage.scope}",
        context=Context(),  # a trace of its own, not a child of the request that saw it end
        start_time=_nanos(outage.started_at),
        links=[Link(context) for context in links if isinstance(context, SpanContext)],
        attributes={
            "essc.outage.id": outage.outage_id,
            "essc.outage.scope": outage.scope,
            "essc.outage.clause": outage.clause.value,
            "essc.outage.reached": outage.reached,
            "essc.outage.failed_attempts": sum(outage.status_counts.values()),
            "essc.outage.affected_requests": sum(outage.affected.values()),
        },
    )
    span.set_status(Status(StatusCode.ERROR, f"platform outage ({outage.clause.value})"))
    span.end(end_time=_nanos(outage.ended_at or outage.last_failure_at))


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
