"""Store-and-forward of issuance across maintenance windows: the forwarder sends what was
accepted once the window is over, and anyone can ask what became of a key. Entries live in
the store, so a gateway restart loses none of them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from essc_gateway.clock import Clock
from essc_gateway.deadlines import request_deadline
from essc_gateway.domain.models import IssueOutcome, IssueState, IssueStatus
from essc_gateway.errors import (
    ErrorReason,
    GatewayError,
    MaintenanceInProgress,
    NotFound,
    PlatformError,
    PreconditionFailed,
)
from essc_gateway.service.issuance import IssuanceService
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.service.periodic import run_every
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import ForwardItem, IssueAttemptState, Store

log = logging.getLogger("essc_gateway.forwarding")
_LEASE_MARGIN = 1.0
"""Seconds between a forward's last platform call and the end of its lease."""
_RECONCILE_WAIT = timedelta(minutes=10)


class Forwarder:
    def __init__(
        self,
        store: Store,
        issuance: IssuanceService,
        vault: Vault,
        calendar: MaintenanceCalendar,
        clock: Clock,
        retry_every: timedelta = timedelta(seconds=5),
        batch: int = 10,
        lease_per_item: timedelta = timedelta(seconds=30),
    ) -> None:
        """`lease_per_item`: how long one forward may take (its platform calls with their
        retries); a batch is claimed for that long per item, so that no other replica takes
        an entry while this one may still be sending it."""
        self._store = store
        self._issuance = issuance
        self._vault = vault
        self._calendar = calendar
        self._clock = clock
        self._retry_every = retry_every
        self._batch = batch
        self._lease_per_item = lease_per_item

    async def forward_due(self) -> int:
        """Forwards what is due, up to a batch; returns how many reached a final state."""
        finished = 0
        for _ in range(self._batch):
            # One entry per claim, its lease as long as one forward may take: a replica that
            # dies mid-forward holds one entry for one lease, and no entry waits on others.
            if not await self._store.any_due_forward(self._clock.now()):
                break  # the usual case: nothing queued, and no write to learn it
            # The deadline is reckoned from before the claim, as the lease is.
            now = self._clock.now()
            lease_end = self._clock.monotonic() + self._lease_per_item.total_seconds()
            claimed = await self._store.claim_due_forwards(now, 1, now + self._lease_per_item)
            if not claimed:
                break
            item = claimed[0]
            # Every platform call of the forward ends before the lease does: whoever claims
            # the entry next can rely on this replica having stopped sending it.
            deadline = request_deadline.set(lease_end - _LEASE_MARGIN)
            try:
                finished += await self._forward_one(item, now)
            except Exception as unexpected:  # one bad entry must not block the queue
                log.error("forward failed: %s", type(unexpected).__name__)
                await self._store.postpone_forward(
                    item.bank_id, item.idempotency_key, now + self._retry_every, item.claim
                )
            finally:
                request_deadline.reset(deadline)
        return finished

    async def _forward_one(self, item: ForwardItem, now: datetime) -> int:
        """1 if the entry reached a final state, else 0 (postponed)."""
        window = self._calendar.active("Issue", now)
        if window is not None:  # the window was extended
            await self._store.postpone_forward(
                item.bank_id, item.idempotency_key, window.ends_at, item.claim
            )
            return 0
        draft = self._vault.open_draft(
            item.bank_id, item.idempotency_key, item.payload_sealed, now.date()
        )
        try:
            await self._issuance.forward(draft, item.claim)
        except PreconditionFailed as error:
            if error.reason is not ErrorReason.CARD_RECORDS_DISAGREE:
                await self._store.fail_forward(
                    item.bank_id, item.idempotency_key, error.reason.value, now, item.claim
                )
                return 1
            # The platform issued it, our records hold another live card of the holder:
            # keep it queued (never forget a card) until an operator reconciles them.
            await self._store.postpone_forward(
                item.bank_id, item.idempotency_key, now + _RECONCILE_WAIT, item.claim
            )
            return 0
        except (PlatformError, MaintenanceInProgress) as error:
            # Still no platform after the window: keep it, try again after the pushback.
            log.warning("forward postponed bank=%s reason=%s", item.bank_id, error.reason.value)
            wait = getattr(error, "retry_after", None) or self._retry_every
            await self._store.postpone_forward(
                item.bank_id, item.idempotency_key, now + max(wait, self._retry_every), item.claim
            )
            return 0
        except GatewayError as error:
            await self._store.fail_forward(
                item.bank_id, item.idempotency_key, error.reason.value, now, item.claim
            )
        return 1

    async def run(self, interval: float) -> None:
        """Forwards due entries every `interval` seconds until cancelled."""
        await run_every(interval, self.forward_due, "forwarder")


async def issue_status(
    store: Store, vault: Vault, clock: Clock, bank_id: str, key: str
) -> IssueStatus:
    """Served from the store alone: answers during maintenance windows too."""
    attempt = await store.get_issue_attempt(bank_id, key)
    if attempt is None:
        raise NotFound("no issuance with this idempotency key", reason=ErrorReason.ISSUE_NOT_FOUND)
    if attempt.state is IssueAttemptState.FORWARD_PENDING:
        return IssueStatus(IssueState.PENDING, attempt.created_at)
    if attempt.in_doubt_at(clock.now()):
        return IssueStatus(IssueState.IN_DOUBT, attempt.created_at)
    if attempt.state is IssueAttemptState.PENDING:
        return IssueStatus(IssueState.IN_PROGRESS, attempt.created_at)
    if attempt.state is IssueAttemptState.FAILED:
        return IssueStatus(
            IssueState.FAILED,
            attempt.created_at,
            failure_reason=attempt.failure_reason or "",
            completed_at=attempt.completed_at,
        )
    card = await store.get_card(attempt.essc_id) if attempt.essc_id else None
    if card is None:
        raise NotFound("no issuance with this idempotency key", reason=ErrorReason.ISSUE_NOT_FOUND)
    return IssueStatus(
        IssueState.COMPLETED,
        attempt.created_at,
        outcome=IssueOutcome(attempt.outcome) if attempt.outcome else IssueOutcome.ISSUED,
        card=await vault.card_view(card),
        completed_at=attempt.completed_at,
    )
