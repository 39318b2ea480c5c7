"""Finding a bank's own holder and guarding against factor guessing (A7, A16(2))."""

from __future__ import annotations

from datetime import datetime

from essc_gateway.clock import Clock
from essc_gateway.domain.models import Factor
from essc_gateway.errors import (
    ErrorReason,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
)
from essc_gateway.service.settings import ServiceSettings
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord, Store


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
        about each other's customers.
        """
        card = await self._store.active_card_for_holder(self._vault.holder_token(id_number))
        if card is None or card.bank_id != bank_id:
            raise NotFound(
                "no e-SSC issued through this bank for this holder",
                reason=ErrorReason.CARD_NOT_FOUND,
            )
        return card

    async def ensure_not_locked(self, holder_token: str) -> None:
        state = await self._store.lockout(holder_token)
        now = self._clock.now()
        if state.locked_until is not None and state.locked_at(now):
            raise self._locked(state.locked_until, now)

    def _locked(self, until: datetime, now: datetime) -> ResourceExhausted:
        return ResourceExhausted(
            "holder is locked out after repeated wrong factors; retry later",
            retry_after=until - now,
            reason=ErrorReason.HOLDER_LOCKED_OUT,
            metadata={"locked_until": until.isoformat()},
        )

    async def failed(self, holder_token: str, factors: dict[Factor, str]) -> Unauthenticated:
        """Counts a failure and builds the error to answer with. `factors`: factor -> reason."""
        now = self._clock.now()
        state = await self._store.record_factor_failure(
            holder_token, now, self._settings.max_factor_failures, self._settings.lockout
        )
        remaining = (
            0
            if state.locked_at(now)
            else (self._settings.max_factor_failures - state.consecutive_failures)
        )
        metadata = {
            "failed_factors": ",".join(sorted(f.value for f in factors)),
            "remaining_attempts": str(remaining),
        }
        metadata.update({f"{f.value.lower()}_reason": r for f, r in factors.items() if r})
        if state.locked_until is not None and state.locked_at(now):
            metadata["locked_until"] = state.locked_until.isoformat()
        return Unauthenticated(
            "holder authentication failed", reason=ErrorReason.FACTOR_REJECTED, metadata=metadata
        )

    async def succeeded(self, holder_token: str) -> None:
        await self._store.clear_factor_failures(holder_token)
