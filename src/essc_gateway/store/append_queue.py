"""Group commit of ledger appends, whatever the database: appends that arrive while a batch
is being committed share the next transaction (one commit, one fsync, for many), and each
caller still waits for its own durability. Adapters provide `_append_batch`, which links
the records after the chain's head inside its transaction."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from essc_gateway.liability.model import LiabilityRecord

AppendObserver = Callable[[int, float, bool], None]


class LedgerAppendQueue:
    def __init__(self) -> None:
        self._append_queue: list[tuple[LiabilityRecord, asyncio.Future[LiabilityRecord]]] = []
        self._append_task: asyncio.Task[None] | None = None
        self._append_now = asyncio.Event()
        self._append_observer: AppendObserver | None = None

    def observe_appends(self, observer: AppendObserver) -> None:
        """Told of every batch: its records, its seconds, whether it committed."""
        self._append_observer = observer

    async def _append_batch(self, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
        """Appends `records` in one transaction, in order; returns them linked."""
        raise NotImplementedError

    async def append_liability(self, record: LiabilityRecord) -> LiabilityRecord:
        return await asyncio.shield(self.enqueue_liability(record))

    def enqueue_liability(
        self, record: LiabilityRecord, *, linger: float = 0.0
    ) -> asyncio.Future[LiabilityRecord]:
        """Queues the append now; the future is done once the record is committed. Reads of
        the ledger wait for queued appends first, so they see every record handed in.

        `linger` > 0 (records nobody waits for): the commit may wait that long for more
        records, so that a stream of them shares one transaction and one fsync."""
        future: asyncio.Future[LiabilityRecord] = asyncio.get_running_loop().create_future()
        self._append_queue.append((record, future))
        if linger <= 0:
            self._append_now.set()
        if self._append_task is None or self._append_task.done():
            self._append_task = asyncio.create_task(self._drain_appends(linger))
        return future

    async def drain_appends(self) -> None:
        """Waits until ledger appends in flight are committed (before reads and closing)."""
        self._append_now.set()
        if self._append_task is not None:
            await asyncio.shield(self._append_task)

    async def _drain_appends(self, linger: float) -> None:
        if linger > 0 and not self._append_now.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._append_now.wait(), linger)
        self._append_now.clear()
        while self._append_queue:
            batch, self._append_queue = self._append_queue, []
            started = time.perf_counter()
            try:
                linked = await self._append_batch([record for record, _ in batch])
            except Exception as error:  # every caller of this batch learns of it
                self._observe(len(batch), started, committed=False)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._observe(len(batch), started, committed=True)
            for (_, future), record in zip(batch, linked, strict=True):
                if not future.done():
                    future.set_result(record)

    def _observe(self, records: int, started: float, *, committed: bool) -> None:
        if self._append_observer is not None:
            self._append_observer(records, time.perf_counter() - started, committed)
