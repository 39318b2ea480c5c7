"""Settles issuances left in doubt, with no action by the bank.

An Issue whose platform answer was lost (a cancelled call, a lost answer, a store failure
after the platform call, a crash) leaves its key IN_DOUBT: the platform may have issued the
card. The reconciler asks the platform's operation lookup what became of each such key, and
records the card and its consent (A1), or forgets a key the platform never received. It
claims each key as a request would, so that replicas and retries never settle one twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from essc_gateway.clock import Clock
from essc_gateway.service.issuance import IssuanceService
from essc_gateway.service.periodic import run_every
from essc_gateway.store.base import Store

log = logging.getLogger(__name__)

DEFAULT_BATCH = 20
# A claim whose lease ran out is left alone this long more: its request stopped calling the
# platform at the lease's end, and the last answer may still be on its way to the store.
SETTLE_GRACE = timedelta(seconds=5)


class IssueReconciler:
    def __init__(
        self, store: Store, issuance: IssuanceService, clock: Clock, batch: int = DEFAULT_BATCH
    ) -> None:
        self._store = store
        self._issuance = issuance
        self._clock = clock
        self._batch = batch

    async def reconcile_once(self) -> int:
        """Settles what it can of the unsettled keys; returns how many were settled."""
        settled = 0
        now = self._clock.now()
        for attempt in await self._store.unsettled_issues(now, self._batch, SETTLE_GRACE):
            if await self._issuance.settle(attempt):
                settled += 1
            else:
                log.info("issuance still in doubt bank=%s", attempt.bank_id)
        return settled

    async def run(self, interval: float) -> None:
        """Reconciles every `interval` seconds until cancelled."""
        await run_every(interval, self.reconcile_once, "reconciler")
