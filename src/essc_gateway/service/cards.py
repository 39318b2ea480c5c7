"""Using an issued e-SSC: query records (A13(1), K), continued use while the physical card
is lost (A6), and termination (A12)."""

from __future__ import annotations

from datetime import datetime

from essc_gateway.domain.models import (
    CardStatus,
    CardView,
    Scenario,
    SocialSecurityInfo,
    mask_card_number,
)
from essc_gateway.errors import ErrorReason, NotFound, PreconditionFailed
from essc_gateway.service.card_use import require_usable
from essc_gateway.service.concurrency import fan_out
from essc_gateway.service.tokens import AuthClaims, TokenService
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord, Store
from essc_gateway.upstream.port import Platform, PlatformCard


def card_view(card: PlatformCard, agreement_version: str) -> CardView:
    """The bank's view of a card as the platform reports it: card number masked."""
    return CardView(
        essc_id=card.essc_id,
        physical_card_number_masked=mask_card_number(card.card_number),
        status=card.status,
        issued_at=card.issued_at,
        agreement_version=agreement_version,
    )


class CardService:
    def __init__(
        self, platform: Platform, store: Store, tokens: TokenService, vault: Vault
    ) -> None:
        self._platform = platform
        self._store = store
        self._tokens = tokens
        self._vault = vault

    async def _card_for(
        self, bank_id: str, token: str, scenario: Scenario
    ) -> tuple[AuthClaims, CardRecord]:
        claims = self._tokens.open_auth(token, bank_id, frozenset({scenario}))
        record = await self._store.get_card(claims.essc_id)
        if record is None or record.bank_id != bank_id:
            raise NotFound("e-SSC not found", reason=ErrorReason.CARD_NOT_FOUND)
        return claims, record

    async def _mirror(self, record: CardRecord, card: PlatformCard) -> None:
        """Keeps the local status in step with the platform, which is the authority."""
        if card.status.value != record.status:
            await self._store.set_card_status(record.essc_id, card.status.value, card.terminated_at)

    async def query(self, bank_id: str, token: str) -> SocialSecurityInfo:
        _, record = await self._card_for(bank_id, token, Scenario.QUERY_RECORDS)
        require_usable(CardStatus(record.status), Scenario.QUERY_RECORDS)
        id_number = await self._vault.id_number(record)
        platform = self._platform
        async with fan_out() as group:
            card = group.create_task(platform.get_card(record.essc_id))
            status = group.create_task(platform.personal_status(id_number))
            contributions = group.create_task(platform.contributions(id_number))
            accounts = group.create_task(platform.accounts(id_number))
            qualifications = group.create_task(platform.qualifications(id_number))
        await self._mirror(record, card.result())
        # A token outlives changes of the card: records go out only while it may be used.
        require_usable(card.result().status, Scenario.QUERY_RECORDS)
        pension, medical = accounts.result()
        return SocialSecurityInfo(
            card=card_view(card.result(), record.consent_version),
            personal_status=status.result(),
            contributions=contributions.result(),
            pension_balance_fen=pension,
            medical_balance_fen=medical,
            qualifications=qualifications.result(),
        )

    async def authorize_continued_use(self, bank_id: str, token: str) -> CardView:
        _, record = await self._card_for(bank_id, token, Scenario.CARD_LOSS)
        if record.status == CardStatus.TERMINATED:
            raise PreconditionFailed(
                "the e-SSC has been terminated", reason=ErrorReason.CARD_TERMINATED
            )
        try:
            card = await self._platform.authorize_continued_use(record.essc_id)
        except PreconditionFailed:
            raise PreconditionFailed(
                "the physical card is not reported lost", reason=ErrorReason.CARD_NOT_SUSPENDED
            ) from None
        await self._mirror(record, card)
        return card_view(card, record.consent_version)

    async def terminate(
        self, bank_id: str, token: str, idempotency_key: str
    ) -> tuple[CardView, datetime]:
        _, record = await self._card_for(bank_id, token, Scenario.UNBIND)
        current = await self._platform.get_card(record.essc_id)
        await self._mirror(record, current)
        if current.status is not CardStatus.TERMINATED:  # a retry of a done Terminate is keyed
            require_usable(current.status, Scenario.UNBIND)  # A6: not while reported lost
        card = await self._platform.terminate_card(
            record.essc_id, bank_id, f"{bank_id}:{idempotency_key}"
        )
        await self._mirror(record, card)
        terminated_at = card.terminated_at or card.issued_at
        return card_view(card, record.consent_version), terminated_at
