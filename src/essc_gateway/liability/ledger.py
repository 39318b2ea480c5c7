"""The ledger: a durable, hash-chained liability record for every failed request."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import uuid
from datetime import datetime
from pathlib import Path

from essc_gateway.clock import Clock
from essc_gateway.errors import GatewayError, PlatformError
from essc_gateway.liability.classify import Classifier, platform_facts
from essc_gateway.liability.model import HolderLink, LiabilityRecord, holder_ref
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.liability.pending import PendingRecords
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.store.base import StoreUnavailable

log = logging.getLogger("essc_gateway.ledger")
# Records written after their answer, at most this many at once; beyond, callers wait.
_MAX_DEFERRED = 2000
# How long a record written after its answer may wait for others to share its commit:
# refusals in a window come in streams, and each commit costs an fsync (measured here:
# most of the writer thread's time and a sixth of a refusal's CPU at 200 refusals/s).
_DEFERRED_LINGER = 0.02


class Ledger:
    def __init__(
        self,
        store: LedgerStore,
        classifier: Classifier,
        outages: OutageTracker,
        clock: Clock,
        pending_directory: Path | None = None,
    ) -> None:
        """Args:
        pending_directory: where records are held while the store cannot write (see
            `pending.py`); None holds them in memory only.
        """
        self._store = store
        self.pending = PendingRecords(pending_directory)
        self._classifier = classifier
        self._outages = outages
        self._clock = clock
        self._deferred: set[asyncio.Future[LiabilityRecord]] = set()

    async def record_failure(
        self,
        *,
        bank_id: str,
        rpc: str,
        status_code: str,
        error: GatewayError,
        trace_id: str,
        span_context: object | None,
        holder_token: str | None,
        arrived_at: datetime | None = None,
        deadline_at: datetime | None = None,
        refused_in_window: bool = False,
    ) -> LiabilityRecord:
        """Classifies and appends the record; returns once it is committed. Except for a
        request refused inside a stored maintenance window (a bank's, A16(1)(a) or the bank's
        own side when announced late; the platform's, announced through OperatorService,
        A16(1)(b)): its record is returned at once and committed with a batch at most
        `_DEFERRED_LINGER` later. The window (stored before the refusal, every version kept)
        already proves the clause for any request in it, so a crash in between loses no
        evidence, and the refusal stays fast."""
        at = self._clock.now()
        arrival = arrived_at or at
        verdict = self._classifier.classify(rpc, arrival, status_code, error)
        if verdict.outage_id is not None:
            self._outages.affect(platform_facts(error).operation, bank_id, span_context)
        link = None if holder_token is None else HolderLink(holder_token, secrets.token_bytes(16))
        ref = None if link is None else holder_ref(bank_id, link.lookup_token, link.salt)
        record = LiabilityRecord(
            seq=0,
            request_id=uuid.uuid4().hex,
            trace_id=trace_id,
            bank_id=bank_id,
            rpc=rpc,
            at=at,
            status_code=status_code,
            reason=error.reason.value,
            clause=verdict.clause,
            evidence=verdict.evidence,
            outage_id=verdict.outage_id,
            window_id=verdict.window_id,
            incident_id=verdict.incident_id,
            holder_token=ref,
            arrived_at=arrival,
            deadline_at=deadline_at,
            attempts=error.attempts if isinstance(error, PlatformError) else (),
            window_version=verdict.window_version,
            holder_link=link,
        )
        defer = (
            refused_in_window
            and verdict.window_id is not None
            and len(self._deferred) < _MAX_DEFERRED
        )
        if self.pending:  # keep the order: earlier records go first
            self.pending.hold(record)
            return record
        if not defer:
            try:
                return await self._store.append_liability(record)
            except StoreUnavailable:
                self.pending.hold(record)
                return record
        queued = self._store.enqueue_liability(record, linger=_DEFERRED_LINGER)
        self._deferred.add(queued)
        queued.add_done_callback(functools.partial(self._deferred_done, record))
        return record

    def _deferred_done(
        self, record: LiabilityRecord, queued: asyncio.Future[LiabilityRecord]
    ) -> None:
        self._deferred.discard(queued)
        if queued.cancelled() or queued.exception() is None:
            return
        if isinstance(queued.exception(), StoreUnavailable):
            self.pending.hold(record)
            return
        log.error("liability record not written: %s", type(queued.exception()).__name__)

    async def flush_pending(self) -> int:
        """Appends records held while the store could not write; returns how many."""
        return await self.pending.flush(self._store.append_liability_if_absent)

    async def drain(self) -> None:
        """Waits until deferred records are committed (before the store closes)."""
        while self._deferred:
            await asyncio.wait(set(self._deferred))
