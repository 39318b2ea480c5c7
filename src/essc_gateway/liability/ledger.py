"""The ledger: a durable, hash-chained liability record for every failed request."""

from __future__ import annotations

import logging
import uuid

from essc_gateway.clock import Clock
from essc_gateway.errors import GatewayError
from essc_gateway.liability.classify import Classifier
from essc_gateway.liability.model import LiabilityRecord
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.request_context import request_holder_token
from essc_gateway.service.vault import Vault

log = logging.getLogger("essc_gateway.ledger")


class Ledger:
    def __init__(
        self,
        store: LedgerStore,
        classifier: Classifier,
        outages: OutageTracker,
        vault: Vault,
        clock: Clock,
    ) -> None:
        self._store = store
        self._classifier = classifier
        self._outages = outages
        self._vault = vault
        self._clock = clock

    async def record_failure(
        self,
        *,
        bank_id: str,
        rpc: str,
        status_code: str,
        error: GatewayError,
        trace_id: str,
        span_context: object | None,
        holder_id: str | None,
    ) -> LiabilityRecord:
        at = self._clock.now()
        verdict = self._classifier.classify(at, status_code, error.reason.value, error.metadata)
        if verdict.outage_id is not None:
            self._outages.affect(error.metadata.get("operation", ""), bank_id, span_context)
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
            holder_token=(
                self._vault.holder_token(holder_id) if holder_id else request_holder_token.get()
            ),
        )
        return await self._store.append_liability(record)
