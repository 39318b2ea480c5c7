"""The `Store` port and the records it keeps. Personal fields arrive already sealed
(`essc_gateway.crypto.FieldCipher`); rows are found by keyed lookup tokens only (A13(1))."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol


class StoreError(Exception):
    """The store failed; the message names the operation, never the data."""


class IssueAttemptState(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True, slots=True)
class IssueAttempt:
    """An idempotency key of one bank and what it produced."""

    bank_id: str
    idempotency_key: str
    fingerprint: str
    state: IssueAttemptState
    created_at: datetime
    outcome: str | None = None
    essc_id: str | None = None


@dataclass(frozen=True, slots=True)
class CardRecord:
    """An e-SSC issued through this gateway. `*_sealed` fields are AES-GCM ciphertexts."""

    essc_id: str
    bank_id: str
    holder_token: str
    name_sealed: bytes
    id_number_sealed: bytes
    phone_sealed: bytes
    card_number_sealed: bytes
    status: str
    issued_at: datetime
    consent_version: str
    consent_accepted_at: datetime
    consent_channel: str
    guardian_sealed: bytes | None = None
    guardian_relation: str | None = None
    terminated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LockoutState:
    consecutive_failures: int
    locked_until: datetime | None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


class Store(Protocol):
    """What the services need to keep. Every method is atomic."""

    async def claim_issue(
        self, bank_id: str, idempotency_key: str, fingerprint: str, now: datetime
    ) -> IssueAttempt | None:
        """Claims a key for a new issuance. None if claimed now; else the existing attempt."""
        ...

    async def complete_issue(
        self,
        bank_id: str,
        idempotency_key: str,
        outcome: str,
        essc_id: str,
        new_card: CardRecord | None,
    ) -> None:
        """Marks the attempt done and, in the same transaction, stores `new_card` if given."""
        ...

    async def release_issue(self, bank_id: str, idempotency_key: str) -> None:
        """Forgets a pending attempt that definitely produced nothing."""
        ...

    async def active_card_for_holder(self, holder_token: str) -> CardRecord | None:
        """The holder's card that is not terminated, whichever bank issued it (A3)."""
        ...

    async def get_card(self, essc_id: str) -> CardRecord | None: ...

    async def set_card_status(
        self, essc_id: str, status: str, terminated_at: datetime | None = None
    ) -> None: ...

    async def lockout(self, holder_token: str) -> LockoutState: ...

    async def record_factor_failure(
        self, holder_token: str, now: datetime, max_failures: int, lock_for: timedelta
    ) -> LockoutState:
        """Counts a wrong factor; the `max_failures`-th in a row locks for `lock_for`."""
        ...

    async def clear_factor_failures(self, holder_token: str) -> None: ...

    async def close(self) -> None: ...
