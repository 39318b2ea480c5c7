"""What the ledger needs from storage (implemented by the SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from essc_gateway.liability.model import Incident, LiabilityRecord, Outage


class LedgerStore(Protocol):
    def enqueue_liability(
        self, record: LiabilityRecord, *, linger: float = 0.0
    ) -> asyncio.Future[LiabilityRecord]:
        """Queues the append; done once committed. Later ledger reads include it. With
        `linger`, the commit may wait up to that many seconds for more appends to join it
        (an append that is awaited, or a read, ends the wait)."""
        ...

    async def append_liability(self, record: LiabilityRecord) -> LiabilityRecord:
        """Appends `record` (its seq and hashes are ignored) as the next link of the chain,
        atomically; returns it with seq, prev_hash and row_hash set."""
        ...

    async def append_liability_if_absent(self, record: LiabilityRecord) -> bool:
        """Appends `record` unless one with its request id is in the ledger already (a held
        record that another process appended); True if it was appended now."""
        ...

    async def liability_records(
        self,
        since: datetime,
        until: datetime,
        bank_id: str | None = None,
        holder_token: str | None = None,
    ) -> list[LiabilityRecord]:
        """Records with `since <= at < until`, optionally of one bank and/or one holder."""
        ...

    async def all_liability_records(self) -> list[LiabilityRecord]:
        """The whole chain in seq order (for verification)."""
        ...

    async def chain_head(self) -> str: ...

    async def save_outage(self, outage: Outage) -> None: ...

    async def outages_between(self, since: datetime, until: datetime) -> list[Outage]: ...

    async def open_outages(self) -> list[Outage]:
        """Outages with no end recorded."""
        ...

    async def save_incident(self, incident: Incident) -> None: ...

    async def incidents(self) -> list[Incident]: ...

    async def add_request_counts(self, counts: Sequence[tuple[str, str, int, int]]) -> None:
        """Adds (bank_id, day YYYY-MM-DD, requests, failed) to the running totals."""
        ...

    async def request_counts(self, bank_id: str, month: str) -> tuple[int, int]:
        """(requests, failed) of a bank in a month (YYYY-MM)."""
        ...
