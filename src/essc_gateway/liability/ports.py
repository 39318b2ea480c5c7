"""What the ledger needs from storage (implemented by the SQLite and PostgreSQL stores).
Every write of a fact a clause rests on (records, amendments, incidents, outages, counts;
windows on the `Store` port) appends its entry to the evidence log in the same transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from essc_gateway.liability.model import Amendment, Incident, LiabilityRecord, Outage

if TYPE_CHECKING:
    from essc_gateway.store.rows import IndexRow


class LedgerStore(Protocol):
    def enqueue_liability(
        self, record: LiabilityRecord, *, linger: float = 0.0
    ) -> asyncio.Future[LiabilityRecord]:
        """Queues the append; done once committed. Later ledger reads include it. With
        `linger`, the commit may wait up to that many seconds for more appends to join it
        (an append that is awaited, or a read, ends the wait)."""
        ...

    async def append_liability(self, record: LiabilityRecord) -> LiabilityRecord:
        """Appends `record` (its seq and log index are ignored) and its evidence log entry,
        atomically; returns it with seq and log_index set."""
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

    async def liability_records_arrived(
        self, since: datetime, until: datetime
    ) -> list[LiabilityRecord]:
        """Records of requests that arrived in [since, until) (what an incident covers)."""
        ...

    async def liability_index(self, request_ids: Sequence[str]) -> list[IndexRow]:
        """The rows that index these records, as stored (for the audit)."""
        ...

    async def liability_record_count(self, below_index: int) -> int:
        """Records whose log entry comes before `below_index`, plus any not in the log."""
        ...

    async def amendments(self, request_ids: Sequence[str]) -> dict[str, list[Amendment]]:
        """The amendments of each record, in the order they were made."""
        ...

    async def append_amendments(self, amendments: Sequence[Amendment]) -> list[Amendment]:
        """Appends those not made already (one per record and incident, whichever replica
        comes first); returns the ones appended now, with their log index."""
        ...

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
