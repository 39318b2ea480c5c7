"""Disclosures (A13(2)): a holder's data leaves the gateway only here, to a named recipient,
on one of the five grounds, with a reference; each one recorded (who, to whom, which fields,
ground, reference, when) so that the bank can answer the holder."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from essc_gateway.clock import Clock
from essc_gateway.errors import ErrorReason, NotFound
from essc_gateway.keys.ports import KeyStore
from essc_gateway.liability.model import holder_ref
from essc_gateway.privacy.model import Disclosure, DisclosureGround
from essc_gateway.privacy.ports import PrivacyStore
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord


@dataclass(frozen=True, slots=True)
class DisclosedCard:
    card: CardRecord
    fields: dict[str, str]


class HolderDisclosure:
    def __init__(self, store: PrivacyStore, cards: KeyStore, vault: Vault, clock: Clock) -> None:
        self._store = store
        self._cards = cards
        self._vault = vault
        self._clock = clock

    async def disclose(
        self,
        bank_id: str,
        id_number: str,
        recipient: str,
        ground: DisclosureGround,
        reference: str,
        operator: str,
    ) -> tuple[Disclosure, list[DisclosedCard]]:
        """The holder's cards with their fields in clear; recorded before it returns.

        Raises:
            NotFound: HOLDER_NOT_FOUND, the bank holds no card of this person.
        """
        tokens = [t for _, t in self._vault.holder_tokens(id_number, bank_id)]
        cards = [c for t in tokens for c in await self._cards.cards_for_holder(bank_id, t)]
        if not cards:
            raise NotFound(
                "the bank holds no data of this holder", reason=ErrorReason.HOLDER_NOT_FOUND
            )
        disclosed = [DisclosedCard(c, await self._vault.personal_fields(c)) for c in cards]
        fields = sorted({name for d in disclosed for name in d.fields})
        token = self._vault.holder_token(bank_id, id_number)
        salt = secrets.token_bytes(16)
        disclosure = Disclosure(
            disclosure_id=uuid.uuid4().hex,
            bank_id=bank_id,
            holder_ref=holder_ref(bank_id, token, salt),
            recipient=recipient,
            ground=ground,
            reference=reference,
            fields=(*fields, "card_status", "issued_at", "consent"),
            operator=operator,
            at=self._clock.now(),
        )
        await self._store.record_disclosure(disclosure, token, salt)
        return disclosure, disclosed

    async def history(self, bank_id: str, id_number: str) -> list[Disclosure]:
        tokens = [t for _, t in self._vault.holder_tokens(id_number, bank_id)]
        return await self._store.disclosures(bank_id, tokens)
