"""Requests per bank and day, for availability in monthly statements. Counted in memory
and added to the store in batches: one write per request would cost more than the request."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import date

from essc_gateway.liability.ports import LedgerStore

log = logging.getLogger("essc_gateway.ledger")


class RequestCounter:
    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._pending: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])

    def count(self, bank_id: str, day: date, failed: bool) -> None:
        totals = self._pending[(bank_id, day.isoformat())]
        totals[0] += 1
        totals[1] += int(failed)

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
        if pending:
            await self._store.add_request_counts(
                [(bank, day, n, failed) for (bank, day), (n, failed) in pending.items()]
            )

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception as unexpected:  # counts are statistics: keep serving
                log.error("request counts not saved: %s", type(unexpected).__name__)
