"""The `Store` port and the records it keeps. Personal fields arrive already sealed
(`essc_gateway.crypto.FieldCipher`); rows are found by keyed lookup tokens only (A13(1))."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from essc_gateway.domain.maintenance import MaintenanceWindow
from essc_gateway.keys.model import WrappedHolderKey

WindowChange = Callable[[MaintenanceWindow], MaintenanceWindow]
"""A window's next version from its current one (version number left to the store)."""


class StoreError(Exception):
    """The store failed; the message names the operation, never the data."""


class ClaimLost(StoreError):
    """The claim on an idempotency key passed to another request (its lease had run out):
    what this request would have written is the new claimant's to write."""


class DuplicateRecord(StoreError):
    """A liability record with this request id is in the ledger already: nothing appended."""


class LiveCardConflict(StoreError):
    """The holder has a live card already (A3: one person, one e-SSC): nothing was written."""


class HolderKeyTaken(StoreError):
    """Another request stored a key for this holder first: seal under that one and retry."""


class KeyVersionTaken(StoreError):
    """A key version exists already (another replica made it first): nothing was written."""


class StoreUnavailable(StoreError):
    """The store cannot write at all (disk full, read-only file system, I/O error): nothing
    of the failed write was kept. Transient: writes resume once the cause is gone."""


class IssueAttemptState(StrEnum):
    PENDING = "PENDING"
    """Being processed right now by one request."""
    FORWARD_PENDING = "FORWARD_PENDING"
    """Accepted during a maintenance window; forwarded to the platform after it."""
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    """Forwarded and refused by the platform; `failure_reason` says why."""
    IN_DOUBT = "IN_DOUBT"
    """Maybe processed by the platform, outcome unknown: never forgotten. The next request
    with the key, or the reconciler, settles it with the platform's operation lookup."""


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
    failure_reason: str | None = None
    completed_at: datetime | None = None
    lease_until: datetime | None = None
    """While PENDING: until when its request may still be running."""
    draft_sealed: bytes | None = None
    """While unsettled: the sealed request, to record the card and consent once settled."""

    def in_doubt_at(self, now: datetime) -> bool:
        """Whether the platform may have processed it and nobody is settling it now."""
        if self.state is IssueAttemptState.IN_DOUBT:
            return True
        return self.state is IssueAttemptState.PENDING and not self.leased_at(now)

    def leased_at(self, now: datetime) -> bool:
        """Whether a request still holds the key at `now`."""
        return self.lease_until is not None and now < self.lease_until


@dataclass(frozen=True, slots=True)
class IssueClaim:
    """The answer to `Store.claim_issue`: the key is ours, or the attempt that holds it."""

    existing: IssueAttempt | None
    """None when the claim was won."""
    token: str = ""
    """When won: what later writes of this claim quote, so that a request whose lease ran
    out cannot overwrite the attempt of the one that took the key over."""
    was_in_doubt: bool = False
    """The claim took over an attempt the platform may have processed: settle it first."""


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """An issuance waiting for its maintenance window to end."""

    bank_id: str
    idempotency_key: str
    payload_sealed: bytes
    accepted_at: datetime
    forward_after: datetime
    tries: int
    claim: str = ""
    """The claim that holds it now: what the claimant's later writes quote."""


@dataclass(frozen=True, slots=True)
class CardRecord:
    """An e-SSC issued through this gateway. `*_sealed` fields are sealed under the holder's
    key (`keys.holder_keys`), found by the bank and `holder_token`."""

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
    admitted: bool = True
    """For `begin_factor_attempt`: whether an attempt was reserved."""

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


class Store(Protocol):
    """What the services need to keep. Every method is atomic, and speaks the errors of
    this module only (never a driver's). A write, once called, completes even if its caller
    is cancelled (a client gone, a deadline): whether to write was decided before the call,
    and a half-decided write would leave the key, the card or the counter wrong."""

    async def claim_issue(
        self,
        bank_id: str,
        idempotency_key: str,
        fingerprint: str,
        now: datetime,
        lease_until: datetime,
        draft_sealed: bytes | None,
    ) -> IssueClaim:
        """Claims a key for an issuance until `lease_until`: a new key, one IN_DOUBT, or one
        PENDING whose lease has run out (its request died) with the same fingerprint.

        Durable before it returns: a request answered IN_DOUBT later (its completion failed
        to write) must leave a key the reconciler finds, whatever crashes meanwhile."""
        ...

    async def unsettled_issues(
        self, now: datetime, limit: int, grace: timedelta
    ) -> list[IssueAttempt]:
        """Attempts IN_DOUBT, or PENDING for `grace` past their lease, that carry their sealed
        request: the reconciler's work, least recently tried first."""
        ...

    async def mark_issue_in_doubt(self, bank_id: str, idempotency_key: str, claim: str) -> None:
        """The platform may have processed it: keep the key, never forget it (a no-op when
        `claim` no longer holds the key)."""
        ...

    async def complete_issue(
        self,
        bank_id: str,
        idempotency_key: str,
        outcome: str,
        essc_id: str,
        new_card: CardRecord | None,
        now: datetime,
        claim: str,
        new_holder_key: WrappedHolderKey | None = None,
        holder_key_id: str | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        """Marks the attempt done and, in the same transaction, stores `new_card` if given
        (with `new_holder_key`, the key its fields are sealed under, when the holder had
        none) and removes the attempt from the forward queue. `holder_key_id`: the stored
        key the card is sealed under; if the holder's stored key is another by then (a key
        job replaced it), HolderKeyTaken, nothing written (None: not checked). `claim`: the
        claim that holds the key (of the request, or of the forwarder for an attempt accepted
        for forwarding).
        Done already with the same card: nothing to do.

        Committed before it returns, so every replica sees it at once; `lazy`: without
        waiting for its fsync (PostgreSQL: nor its WAL write). Only for what the platform's
        lookup of the key finds again: a request's own ISSUED completion (IssueCard issued or
        replayed the card for this key). An Issue's one durable commit is then its claim,
        made before IssueCard leaves: a completion that a crash of the machine or of the
        database server, or a failover to a synchronous standby, takes back leaves that
        claim with its sealed request, as a request that died after IssueCard leaves it, and
        the reconciler (or the bank's retry) settles it after its lease with the same card
        (an asynchronous standby can lose durable commits too). Everything else is durable: an
        ALREADY_HELD answer has no operation the lookup finds (the key would be forgotten),
        and a forwarded issuance must not go back from COMPLETED to PENDING.

        Raises:
            ClaimLost: another request holds the key now.
            LiveCardConflict: `new_card`'s holder has another live card.
            HolderKeyTaken: another request stored a key for this holder first.
        """
        ...

    async def get_issue_attempt(
        self, bank_id: str, idempotency_key: str
    ) -> IssueAttempt | None: ...

    async def accept_for_forwarding(
        self,
        bank_id: str,
        idempotency_key: str,
        payload_sealed: bytes,
        accepted_at: datetime,
        forward_after: datetime,
        claim: str,
    ) -> None:
        """Turns a claimed attempt into a durable store-and-forward entry.

        Raises:
            ClaimLost: another request holds the key now.
        """
        ...

    async def any_due_forward(self, now: datetime) -> bool:
        """Whether any queued issuance is due and unclaimed: a read, so that an empty queue
        costs no write (the forwarder looks several times a second)."""
        ...

    async def forward_queue_depth(self) -> int:
        """Issuances accepted and not yet forwarded (for the metrics)."""
        ...

    def connections(self) -> Mapping[str, int]:
        """The store's connections by state (for the metrics); no I/O."""
        ...

    async def claim_due_forwards(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[ForwardItem]:
        """Claims up to `limit` queued issuances whose `forward_after` has come, oldest
        first, until `lease_until`: no other claim takes them meanwhile (replicas forward
        side by side, none twice); a claimant that dies leaves them to the next claim once
        its lease is over."""
        ...

    async def postpone_forward(
        self, bank_id: str, idempotency_key: str, forward_after: datetime, claim: str
    ) -> None:
        """Puts a claimed entry back in the queue until `forward_after` (a no-op when `claim`
        no longer holds it: its lease ran out and another replica took it)."""
        ...

    async def fail_forward(
        self, bank_id: str, idempotency_key: str, reason: str, now: datetime, claim: str
    ) -> None:
        """Records a definitive refusal and takes the entry off the queue (a no-op when
        `claim` no longer holds it)."""
        ...

    async def save_window(self, window: MaintenanceWindow, recorded_at: datetime) -> None:
        """Inserts a new window (its first version) and appends it to the history."""
        ...

    async def update_window(
        self, window_id: str, change: WindowChange, recorded_at: datetime
    ) -> MaintenanceWindow | None:
        """Applies `change` to the stored window, atomically, as its next version (the
        version number is the store's: concurrent changes from any replica never collide),
        and appends it to the history. None if there is no such window; what `change`
        raises is raised and nothing is written. `change` returning its argument unchanged
        writes nothing."""
        ...

    async def window_versions(self) -> list[MaintenanceWindow]:
        """Every version of every window, by window and version (the calendar judges A16(1)(a)
        on a window's history, not on its latest version alone)."""
        ...

    async def release_issue(self, bank_id: str, idempotency_key: str, claim: str) -> None:
        """Forgets a pending attempt that definitely produced nothing (a no-op when `claim`
        no longer holds the key)."""
        ...

    async def active_card_for_holder(self, holder_token: str) -> CardRecord | None:
        """The holder's card that is not terminated, whichever bank issued it (A3)."""
        ...

    async def current_card_for_holder(self, holder_token: str) -> CardRecord | None:
        """The holder's live card if any, else the last one terminated (A12)."""
        ...

    async def get_card(self, essc_id: str) -> CardRecord | None: ...

    async def set_card_status(
        self, essc_id: str, status: str, terminated_at: datetime | None = None
    ) -> None: ...

    async def begin_factor_attempt(
        self, holder_token: str, now: datetime, max_failures: int, stale_after: timedelta
    ) -> LockoutState:
        """Reserves one factor check, atomically: refused (`admitted` False) while locked or
        while failures plus checks in flight would reach `max_failures`, so that concurrent
        guesses cannot get past the lockout. Reservations older than `stale_after` lapse.
        Committed but lazy (not waited to be durable): a reservation lost in a crash is one
        that would have lapsed."""
        ...

    async def end_factor_attempt(
        self,
        holder_token: str,
        verdict: bool | None,
        now: datetime,
        max_failures: int,
        lock_for: timedelta,
    ) -> LockoutState:
        """Releases a reservation. True resets the count (never an active lock), False counts
        a failure and the `max_failures`-th in a row locks for `lock_for`; None (no verdict,
        e.g. the platform failed) only releases. Only a failure is durable before the answer;
        a success or a release lost in a crash leaves the count as high as it was, never
        lower."""
        ...

    async def record_sms_send(
        self,
        holder_token: str,
        purpose: str,
        now: datetime,
        min_interval: timedelta,
        daily_limit: int,
    ) -> timedelta | None:
        """Records a send unless one to this holder (any purpose) is younger than `min_interval` or
        `daily_limit` were sent in the last 24 h; then returns how long to wait."""
        ...

    async def forget_sms_send(self, holder_token: str, purpose: str, sent_at: datetime) -> None:
        """Takes back a recorded send that did not happen (the platform failed)."""
        ...

    async def close(self) -> None: ...
