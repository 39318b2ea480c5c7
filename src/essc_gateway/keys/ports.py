"""What key management needs of the store (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from essc_gateway.keys.model import (
    HolderKeyMove,
    KeyAction,
    KeyChange,
    KeyEvent,
    KeyJob,
    KeyPurpose,
    KeyVersion,
    LookupMove,
    WrappedHolderKey,
)
from essc_gateway.store.base import CardRecord


class KeyStore(Protocol):
    async def key_versions(self) -> list[KeyVersion]:
        """Every key version below the root, of every bank."""
        ...

    async def add_key_versions(
        self, keys: Sequence[KeyVersion], events: Sequence[KeyEvent]
    ) -> bool:
        """Inserts the versions and logs the events, in one transaction. False, with nothing
        written, when one of them exists already (another replica made it first)."""
        ...

    async def change_keys(self, change: KeyChange) -> None:
        """Writes the change and its events in one transaction and tells the replicas.

        Raises:
            KeyVersionTaken: a new version exists already (two rotations at once).
        """
        ...

    async def sealed_under(self, bank_id: str, purpose: KeyPurpose, version: int) -> int:
        """How many stored values still depend on this version: DATA, holder keys it wraps
        and requests it seals (drafts); LOOKUP, rows found by its tokens. A version may be
        retired only at 0."""
        ...

    async def get_card(self, essc_id: str) -> CardRecord | None: ...

    async def holds_cards(self) -> bool:
        """Whether any card is stored (a store without keys but with cards was sealed by
        keys this version does not have)."""
        ...

    async def log_key_events(self, events: Sequence[KeyEvent]) -> None:
        """Appends events that change no key (usage counts) to the evidence log."""
        ...

    async def holder_key(self, bank_id: str, holder_token: str) -> WrappedHolderKey | None:
        """The holder's key at the bank, if one was stored (with the holder's first card)."""
        ...

    async def cards_for_holder(self, bank_id: str, holder_token: str) -> list[CardRecord]:
        """Every card of the holder at the bank, terminated ones too."""
        ...

    async def start_key_job(self, job: KeyJob) -> None:
        """Records a job (nothing if one of that id exists)."""
        ...

    async def key_jobs(self) -> list[KeyJob]: ...

    async def lease_key_job(
        self, job_id: str, holder: str, now: datetime, until: datetime
    ) -> KeyJob | None:
        """The unfinished job, leased to `holder` until `until`, if no other replica holds
        an unexpired lease on it; else None."""
        ...

    async def holder_keys_to_move(
        self, bank_id: str, target_version: int, limit: int
    ) -> list[WrappedHolderKey]:
        """Holder keys of the bank not yet under the target DATA version."""
        ...

    async def count_holder_keys_to_move(self, bank_id: str, target_version: int) -> int: ...

    async def move_holder_keys(
        self,
        job_id: str,
        holder: str,
        moves: Sequence[HolderKeyMove],
        until: datetime,
    ) -> int:
        """Each move applied if its holder key is still the old one (a move made twice
        writes nothing), the cards re-sealed with it, the job's progress and lease in the
        same transaction. Returns how many moved.

        Raises:
            ClaimLost: the lease is another replica's now.
        """
        ...

    async def holder_tokens_to_move(self, bank_id: str, version: int, limit: int) -> list[str]:
        """Lookup tokens of the bank's cards not under LOOKUP `version`."""
        ...

    async def count_holder_tokens_to_move(self, bank_id: str, version: int) -> int: ...

    async def move_lookup_tokens(
        self, job_id: str, holder: str, moves: Sequence[LookupMove], until: datetime
    ) -> int:
        """Each holder's cards, holder key, lockout and SMS rows filed under the new token
        (a move whose old token is gone already writes nothing), with the job's progress and
        lease, in one transaction. Returns how many holders moved.

        Raises:
            ClaimLost: the lease is another replica's now.
        """
        ...

    async def finish_key_job(self, job_id: str, holder: str, now: datetime) -> None: ...

    async def add_key_action(self, action: KeyAction, event: KeyEvent) -> None:
        """Records an export or destruction asked for, and its event."""
        ...

    async def key_action(self, action_id: str) -> KeyAction | None: ...

    async def approve_key_action(
        self, action: KeyAction, approved_by: str, at: datetime, events: Sequence[KeyEvent]
    ) -> None:
        """Marks the action approved with its events; a DESTROY deletes the version's wrapped
        material in the same transaction.

        Raises:
            ClaimLost: approved already (by someone else meanwhile).
        """
        ...
