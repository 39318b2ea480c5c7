"""What erasure and disclosure need of the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from essc_gateway.privacy.model import Disclosure, ErasedCounts, Erasure, ErasureJob
from essc_gateway.store.base import CardRecord

UnsettledCheck = Callable[[list[tuple[str, bytes]]], None]
"""Called inside an erasure's transaction, new issuances held back until it ends, with the
bank's unsettled issuances (idempotency key, sealed draft); raises to refuse the erasure."""


class PrivacyStore(Protocol):
    async def unsettled_drafts(self, bank_id: str) -> list[tuple[str, bytes]]:
        """(idempotency key, sealed draft) of the bank's issuances in flight, in doubt or
        queued for forwarding."""
        ...

    async def erase_holder(
        self,
        bank_id: str,
        tokens: Sequence[str],
        erasure: Callable[[ErasedCounts], Erasure],
        check: UnsettledCheck,
    ) -> Erasure | None:
        """Deletes, in one transaction, every row naming the holder under any of its lookup
        `tokens` (cards with consent and guardian, holder key, record links, lockouts, SMS
        throttles, disclosure history, the completed attempts of its cards), marks the
        bank's last erasure (a record that arrived before it and is appended later gets no
        link) and appends `erasure(counts)` to the evidence log. `check` runs first, in the
        same transaction; what it raises propagates, nothing changed. None, and nothing
        changed, if no row named the holder."""
        ...

    async def purge_erased(self) -> bool:
        """Removes what deleted rows left in the database's files (SQLite: the WAL; zeroed
        pages are `secure_delete`'s. PostgreSQL: the holder tables rewritten). False if it
        could not finish now."""
        ...

    async def holder_tokens_of_bank(self, bank_id: str, limit: int) -> list[str]:
        """Up to `limit` lookup tokens of holders the bank still has rows of."""
        ...

    async def record_disclosure(
        self, disclosure: Disclosure, lookup_token: str, salt: bytes
    ) -> None:
        """The disclosure's row (found by the holder's token, with the salt that opens its
        `holder_ref`) and its evidence entry."""
        ...

    async def disclosures(self, bank_id: str, tokens: Sequence[str]) -> list[Disclosure]:
        """The holder's disclosures, oldest first."""
        ...


class ErasureJobStore(Protocol):
    async def start_erasure_job(self, job: ErasureJob) -> bool:
        """Records a job; False (nothing changed) if one of that id exists."""
        ...

    async def erasure_jobs(self) -> list[ErasureJob]:
        """Every job, oldest first."""
        ...

    async def lease_erasure_job(
        self, job_id: str, holder: str, now: datetime, until: datetime
    ) -> ErasureJob | None:
        """The unfinished job leased to `holder` until `until`, unless another replica's
        lease runs."""
        ...

    async def erasure_job_progress(
        self, job_id: str, holder: str, erased: int, waiting: int, until: datetime
    ) -> None:
        """Adds `erased`, sets `waiting`, renews the lease. Raises ClaimLost if another
        replica holds it now."""
        ...

    async def finish_erasure_job(self, job_id: str, holder: str, now: datetime) -> None: ...

    async def retention_tokens(
        self, bank_id: str, terminated_before: datetime, limit: int
    ) -> list[str]:
        """Up to `limit` lookup tokens of holders whose every card at the bank was
        terminated before `terminated_before`."""
        ...

    async def guardian_cards(self, bank_id: str, after: str, limit: int) -> list[CardRecord]:
        """Up to `limit` of the bank's cards that hold a guardian's data, by card id after
        `after` (a page)."""
        ...

    async def clear_guardian(self, essc_id: str, erasure: Erasure) -> bool:
        """Removes the card's guardian data, with its erasure's evidence entry; False if
        the card holds none any more."""
        ...
