"""Finding a bank's own holder and guarding against factor guessing (A7, A16(2))."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from essc_gateway.clock import Clock
from essc_gateway.domain.models import CardStatus, Factor
from essc_gateway.errors import (
    ErrorReason,
    NotFound,
    PreconditionFailed,
    ResourceExhausted,
    Unauthenticated,
)
from essc_gateway.service.settings import ServiceSettings
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord, LockoutState, Store

# A reservation whose request died without releasing it stops counting after this.
_STALE_RESERVATION = timedelta(minutes=1)


class FactorAttempt:
    """One reserved factor check; tell it the verdict, or leave the block without one."""

    def __init__(self, holders: Holders, holder_token: str) -> None:
        self._holders = holders
        self._holder_token = holder_token
        self.settled = False

    async def succeeded(self) -> None:
        self.settled = True
        await self._holders._end(self._holder_token, True)

    async def failed(self, factors: dict[Factor, str]) -> Unauthenticated:
        """Counts the failure; returns the error to answer with. `factors`: factor -> reason."""
        self.settled = True
        state = await self._holders._end(self._holder_token, False)
        return self._holders.rejected(state, factors)


class Holders:
    """The bank's view of holders: only cards it issued; lockout after repeated failures."""

    def __init__(self, store: Store, vault: Vault, clock: Clock, settings: ServiceSettings):
        self._store = store
        self._vault = vault
        self._clock = clock
        self._settings = settings

    async def card_of(self, bank_id: str, id_number: str) -> CardRecord:
        """The holder's live card issued through `bank_id`.

        Another bank's holder is reported exactly like an unknown person: banks never learn
        about each other's customers. A card this bank terminated is reported as such, as
        Query reports it (A12).
        """
        card = None
        # The newest lookup version first; an older one finds a holder not yet moved to it.
        for _, token in self._vault.holder_tokens(id_number, bank_id):
            card = await self._store.current_card_for_holder(token)
            if card is not None:
                break
        if card is None or card.bank_id != bank_id:
            raise NotFound(
                "no e-SSC issued through this bank for this holder",
                reason=ErrorReason.CARD_NOT_FOUND,
            )
        if card.status == CardStatus.TERMINATED:
            raise PreconditionFailed(
                "the e-SSC has been terminated", reason=ErrorReason.CARD_TERMINATED
            )
        return card

    async def send_sms_code(
        self, holder_token: str, purpose: str, send: Callable[[], Awaitable[datetime]]
    ) -> datetime:
        """Throttles SMS codes per holder (resend interval, daily limit), then sends one."""
        now = self._clock.now()
        settings = self._settings
        wait = await self._store.record_sms_send(
            holder_token, purpose, now, settings.sms_resend_interval, settings.sms_daily_limit
        )
        if wait is not None:
            raise ResourceExhausted(
                "an SMS code was sent recently; retry later",
                retry_after=wait,
                reason=ErrorReason.SMS_THROTTLED,
            )
        try:
            return await send()
        except BaseException:
            await self._store.forget_sms_send(holder_token, purpose, now)
            raise

    @asynccontextmanager
    async def attempt(self, holder_token: str) -> AsyncIterator[FactorAttempt]:
        """Reserves a factor check or raises ResourceExhausted (locked out)."""
        now = self._clock.now()
        begin = asyncio.ensure_future(
            self._store.begin_factor_attempt(
                holder_token, now, self._settings.max_factor_failures, _STALE_RESERVATION
            )
        )
        try:
            state = await asyncio.shield(begin)
        except asyncio.CancelledError:
            # The caller left (deadline, client gone) while the reservation was being
            # written: it is written even so, and must not count against the holder.
            if (await begin).admitted:
                await self._end(holder_token, None)
            raise
        if not state.admitted:
            raise self._locked(state, now)
        attempt = FactorAttempt(self, holder_token)
        try:
            yield attempt
        finally:
            if not attempt.settled:
                await self._end(holder_token, None)

    async def _end(self, holder_token: str, verdict: bool | None) -> LockoutState:
        return await self._store.end_factor_attempt(
            holder_token,
            verdict,
            self._clock.now(),
            self._settings.max_factor_failures,
            self._settings.lockout,
        )

    def _locked(self, state: LockoutState, now: datetime) -> ResourceExhausted:
        if state.locked_until is not None and state.locked_at(now):
            return ResourceExhausted(
                "holder is locked out after repeated wrong factors; retry later",
                retry_after=state.locked_until - now,
                reason=ErrorReason.HOLDER_LOCKED_OUT,
                metadata={"locked_until": state.locked_until.isoformat()},
            )
        # Not locked yet, but the checks in flight could use up the remaining tries.
        return ResourceExhausted(
            "other checks of this holder's factors are in progress; retry shortly",
            retry_after=timedelta(seconds=1),
            reason=ErrorReason.FACTOR_CHECKS_IN_PROGRESS,
            metadata={
                "in_progress": "true",
                "consecutive_failures": str(state.consecutive_failures),
            },
        )

    def rejected(self, state: LockoutState, factors: dict[Factor, str]) -> Unauthenticated:
        now = self._clock.now()
        locked = state.locked_until is not None and state.locked_at(now)
        remaining = 0 if locked else self._settings.max_factor_failures - state.consecutive_failures
        metadata = {
            "failed_factors": ",".join(sorted(f.value for f in factors)),
            "remaining_attempts": str(remaining),
        }
        metadata.update({f"{f.value.lower()}_reason": r for f, r in factors.items() if r})
        if locked and state.locked_until is not None:
            metadata["locked_until"] = state.locked_until.isoformat()
        return Unauthenticated(
            "holder authentication failed", reason=ErrorReason.FACTOR_REJECTED, metadata=metadata
        )
