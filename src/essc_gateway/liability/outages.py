"""The outage tracker: watches every platform attempt, opens an outage when an operation
stops answering as it should and closes it at the first good answer. The outage starts at the
first failure of the run, so its times match the truth to within one request."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, Tracer

from essc_gateway.clock import Clock
from essc_gateway.liability.model import Clause, Outage
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.upstream.outcomes import AttemptFailure

OutageClosed = Callable[[Outage, list[object]], None]


@dataclass
class _Run:
    """Failures in a row of one operation; an outage once there are enough of them."""

    first_failure_at: datetime
    last_failure_at: datetime
    failures: int = 0
    reached: bool = False
    status_counts: Counter[str] = field(default_factory=Counter)
    affected: Counter[str] = field(default_factory=Counter)
    links: list[object] = field(default_factory=list)
    outage_id: str | None = None


class OutageTracker:
    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        threshold: int = 3,
        on_closed: OutageClosed | None = None,
        max_links: int = 128,
    ) -> None:
        """Args:
        threshold: failed attempts in a row that make an outage.
        on_closed: told of each closed outage with the span contexts of affected requests.
        """
        self._store = store
        self._clock = clock
        self._threshold = threshold
        self._on_closed = on_closed
        self._max_links = max_links
        self._runs: dict[str, _Run] = {}

    @staticmethod
    def _outage(scope: str, run: _Run, ended_at: datetime | None) -> Outage:
        assert run.outage_id is not None
        return Outage(
            outage_id=run.outage_id,
            scope=scope,
            started_at=run.first_failure_at,
            ended_at=ended_at,
            reached=run.reached,
            last_failure_at=run.last_failure_at,
            status_counts=dict(run.status_counts),
            affected=dict(run.affected),
            # A16(1)(d) when the platform was never reached, else a platform-side fault.
            clause=Clause.A16_1_B if run.reached else Clause.A16_1_D,
        )

    async def close_stale(self) -> None:
        """At start: outages a stopped or crashed gateway left open end at their last failure
        (the best evidence there is); the new process watches the platform afresh."""
        for outage in await self._store.open_outages():
            await self._store.save_outage(replace(outage, ended_at=outage.last_failure_at))

    async def attempt_done(self, operation: str, failure: AttemptFailure | None) -> None:
        """Told of every attempt: None for a good answer (a business refusal included)."""
        now = self._clock.now()
        run = self._runs.get(operation)
        if failure is None:
            if run is not None:
                del self._runs[operation]
                if run.outage_id is not None:
                    outage = self._outage(operation, run, ended_at=now)
                    await self._store.save_outage(outage)
                    if self._on_closed is not None:
                        self._on_closed(outage, run.links)
            return
        if run is None:
            run = self._runs[operation] = _Run(first_failure_at=now, last_failure_at=now)
        run.failures += 1
        run.last_failure_at = now
        run.reached = run.reached or failure.reached
        run.status_counts["NOT_SENT" if not failure.reached else failure.code.name] += 1
        if run.outage_id is None and run.failures >= self._threshold:
            run.outage_id = f"out-{uuid.uuid4().hex[:16]}"
            await self._store.save_outage(self._outage(operation, run, ended_at=None))

    def current(self, operation: str) -> Outage | None:
        run = self._runs.get(operation)
        if run is None or run.outage_id is None:
            return None
        return self._outage(operation, run, ended_at=None)

    def affect(self, operation: str, bank_id: str, span_context: object | None) -> str | None:
        """Counts a failed request against the open outage of `operation`; its id, if any."""
        run = self._runs.get(operation)
        if run is None or run.outage_id is None:
            return None
        run.affected[bank_id] += 1
        if span_context is not None and len(run.links) < self._max_links:
            run.links.append(span_context)
        return run.outage_id

    def open_outages(self) -> list[Outage]:
        return [
            self._outage(scope, run, ended_at=None)
            for scope, run in self._runs.items()
            if run.outage_id is not None
        ]

    async def flush(self) -> None:
        """Saves the counts of open outages (on shutdown: they stay open in the store)."""
        for outage in self.open_outages():
            await self._store.save_outage(outage)


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
