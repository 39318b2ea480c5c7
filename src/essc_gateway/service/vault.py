"""Personal data in and out of the store: sealed per field under the bank's DATA key, found
by the bank's keyed lookup tokens (A13(1)); one bank's keys never open another's data, and
the same person at two banks has unlinkable tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from essc_gateway.domain.citizen_id import normalise_id_text, parse_citizen_id
from essc_gateway.domain.models import (
    CardStatus,
    CardView,
    Consent,
    ConsentChannel,
    Guardian,
    GuardianRelation,
    Person,
    mask_card_number,
)
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.keyring import DecryptionError, HolderKey
from essc_gateway.keys.model import CardReseal, WrappedHolderKey
from essc_gateway.store.base import CardRecord

CARDS_TABLE = "cards"
FORWARD_TABLE = "forward_queue"


@dataclass(frozen=True, slots=True)
class IssueDraft:
    """Everything needed to issue once the platform can be called."""

    bank_id: str
    idempotency_key: str
    applicant: Person
    consent: Consent
    guardian: Guardian | None
    card_number: str
    holder_token: str

    def __repr__(self) -> str:
        return f"IssueDraft(bank={self.bank_id}, key={self.idempotency_key})"


def _sealed_field(card: CardRecord, field: str) -> bytes:
    sealed = {
        "name": card.name_sealed,
        "id_number": card.id_number_sealed,
        "phone": card.phone_sealed,
        "card_number": card.card_number_sealed,
        "guardian": card.guardian_sealed,
    }[field]
    if sealed is None:
        raise DecryptionError(f"the card has no {field}")
    return sealed


def _place(table: str, row_id: str, field: str) -> str:
    return f"{table}\x1f{row_id}\x1f{field}"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A keyed fingerprint under the current LOOKUP version, and the ones under every held
    version: a request repeated across a rotation of the lookup key still matches."""

    current: str
    any_version: frozenset[str]


class Vault:
    """The only code that turns personal data into ciphertexts and lookup tokens."""

    def __init__(self, keys: KeyHierarchy, holder_keys: HolderKeys) -> None:
        self._keys = keys
        self._holder_keys = holder_keys

    def holder_token(self, bank_id: str, id_number: str) -> str:
        """The same token however the ID was spelt (a raw one from a failed request, too)."""
        return self.token(bank_id, "citizen_id", normalise_id_text(id_number))

    def token(self, bank_id: str, purpose: str, value: str) -> str:
        return self._keys.bank(bank_id).lookup_token(f"{purpose}\x1f{value}")

    def fingerprint(self, bank_id: str, purpose: str, value: str) -> Fingerprint:
        tokens = self._keys.bank(bank_id).lookup_tokens(f"{purpose}\x1f{value}")
        return Fingerprint(tokens[0], frozenset(tokens))

    def holder_tokens(self, id_number: str, bank_id: str | None) -> list[tuple[str, str]]:
        """(bank, token) under every LOOKUP version of the bank, or of every bank when
        `bank_id` is None: what records about this person were filed under."""
        banks = [bank_id] if bank_id is not None else self._keys.banks()
        message = "citizen_id\x1f" + normalise_id_text(id_number)
        return [
            (bank, token)
            for bank in banks
            for token in self._keys.bank(bank).lookup_tokens(message)
        ]

    def is_holder_token(self, bank_id: str, token: str, id_number: str) -> bool:
        """Whether `token` is the holder's under any LOOKUP version the bank holds (one made
        before a rotation of the lookup key still matches)."""
        return self.is_token(bank_id, token, "citizen_id", normalise_id_text(id_number))

    def is_token(self, bank_id: str, token: str, purpose: str, value: str) -> bool:
        return token in self._keys.bank(bank_id).lookup_tokens(f"{purpose}\x1f{value}")

    # A holder's card fields, under the holder's own key.
    async def key_for_new_card(
        self, bank_id: str, holder_token: str, now: datetime, *, read: bool = False
    ) -> tuple[HolderKey, WrappedHolderKey | None]:
        """The key to seal a new card's fields under: the holder's if held in memory (or,
        with `read`, stored), else a new one to store with the card (then `remember_key`
        once it is stored). Most cards are a holder's first: no read is spent on them; the
        store refuses a second key for a returning holder (HolderKeyTaken), and the caller
        asks again with `read`."""
        existing = (
            await self._holder_keys.existing(bank_id, holder_token)
            if read
            else self._holder_keys.cached(bank_id, holder_token)
        )
        if existing is not None:
            return existing, None
        return self._holder_keys.new(bank_id, holder_token, now)

    def remember_key(self, bank_id: str, holder_token: str, key: HolderKey) -> None:
        self._holder_keys.remember(bank_id, holder_token, key)

    def forget_key(self, bank_id: str, holder_token: str) -> None:
        self._holder_keys.forget(bank_id, holder_token)

    def seal(self, holder: HolderKey, bank_id: str, essc_id: str, field: str, value: str) -> bytes:
        return self._keys.bank(bank_id).seal_for(
            holder, value.encode(), _place(CARDS_TABLE, essc_id, field)
        )

    def seal_guardian(
        self, holder: HolderKey, bank_id: str, essc_id: str, guardian: Guardian
    ) -> bytes:
        payload = json.dumps(
            {
                "name": guardian.name,
                "id_number": guardian.citizen_id.value,
                "mobile_phone": guardian.mobile_phone,
            }
        )
        return self.seal(holder, bank_id, essc_id, "guardian", payload)

    async def _open(self, card: CardRecord, field: str) -> str:
        """The card's `field` in clear. A key job may have moved the card since it was read
        (filed under a newer lookup token, or sealed again under a fresh holder key): then
        the card and its holder's key are read again, once."""
        place = _place(CARDS_TABLE, card.essc_id, field)
        for attempt in range(2):
            if attempt:
                self._holder_keys.forget(card.bank_id, card.holder_token)
                fresh = await self._holder_keys.card(card.essc_id)
                if fresh is None:
                    break
                card = fresh
            holder = await self._holder_keys.existing(card.bank_id, card.holder_token)
            if holder is None:
                continue  # erased (the key is gone with every copy of the data), or moved
            try:
                return (
                    self._keys.bank(card.bank_id)
                    .open_for(holder, _sealed_field(card, field), place)
                    .decode()
                )
            except DecryptionError:
                continue
        raise DecryptionError("the holder's fields do not open with the holder's key")

    def reseal_card(self, card: CardRecord, old: HolderKey, new: HolderKey) -> CardReseal:
        """The card's fields opened with the holder's old key and sealed under the new one."""
        keyring = self._keys.bank(card.bank_id)

        def moved(field: str, sealed: bytes) -> bytes:
            place = _place(CARDS_TABLE, card.essc_id, field)
            return keyring.seal_for(new, keyring.open_for(old, sealed, place), place)

        guardian = card.guardian_sealed
        return CardReseal(
            essc_id=card.essc_id,
            name_sealed=moved("name", card.name_sealed),
            id_number_sealed=moved("id_number", card.id_number_sealed),
            phone_sealed=moved("phone", card.phone_sealed),
            card_number_sealed=moved("card_number", card.card_number_sealed),
            guardian_sealed=None if guardian is None else moved("guardian", guardian),
        )

    async def id_number(self, card: CardRecord) -> str:
        return await self._open(card, "id_number")

    async def personal_fields(self, card: CardRecord) -> dict[str, str]:
        """The card's personal fields in clear (a disclosure, A13(2)): name, ID number,
        phone, card number, and the guardian's name, ID number and phone if any."""
        fields = {
            "name": await self._open(card, "name"),
            "id_number": await self._open(card, "id_number"),
            "mobile_phone": await self._open(card, "phone"),
            "card_number": await self._open(card, "card_number"),
        }
        if card.guardian_sealed is not None:
            guardian = json.loads(await self._open(card, "guardian"))
            fields |= {f"guardian_{name}": str(value) for name, value in guardian.items()}
        return fields

    def draft_holder_token(self, bank_id: str, idempotency_key: str, sealed: bytes) -> str:
        """The holder token an issuance's sealed draft names (erasure checks that none of
        the holder's issuances is unsettled)."""
        payload = json.loads(
            self._keys.bank(bank_id).open(
                sealed, _place(FORWARD_TABLE, f"{bank_id}:{idempotency_key}", "payload")
            )
        )
        return str(payload["holder_token"])

    def seal_draft(self, draft: IssueDraft) -> bytes:
        guardian = draft.guardian
        payload = {
            "name": draft.applicant.name,
            "id_number": draft.applicant.citizen_id.value,
            "mobile_phone": draft.applicant.mobile_phone,
            "card_number": draft.card_number,
            "holder_token": draft.holder_token,
            "consent": [
                draft.consent.agreement_version,
                draft.consent.accepted_at.isoformat(),
                draft.consent.channel.value,
            ],
            "guardian": None
            if guardian is None
            else [
                guardian.name,
                guardian.citizen_id.value,
                guardian.mobile_phone,
                guardian.relation.value,
            ],
        }
        return self._keys.bank(draft.bank_id).seal(
            json.dumps(payload, ensure_ascii=False).encode(),
            _place(FORWARD_TABLE, f"{draft.bank_id}:{draft.idempotency_key}", "payload"),
        )

    def open_draft(
        self, bank_id: str, idempotency_key: str, sealed: bytes, today: date
    ) -> IssueDraft:
        payload = json.loads(
            self._keys.bank(bank_id).open(
                sealed, _place(FORWARD_TABLE, f"{bank_id}:{idempotency_key}", "payload")
            )
        )
        version, accepted_at, channel = payload["consent"]
        guardian = None
        if payload["guardian"] is not None:
            g_name, g_id, g_phone, relation = payload["guardian"]
            guardian = Guardian(
                name=g_name,
                citizen_id=parse_citizen_id(g_id, today),
                mobile_phone=g_phone,
                relation=GuardianRelation(relation),
            )
        return IssueDraft(
            bank_id=bank_id,
            idempotency_key=idempotency_key,
            applicant=Person(
                name=payload["name"],
                citizen_id=parse_citizen_id(payload["id_number"], today),
                mobile_phone=payload["mobile_phone"],
            ),
            consent=Consent(
                agreement_version=version,
                accepted_at=datetime.fromisoformat(accepted_at),
                channel=ConsentChannel(channel),
            ),
            guardian=guardian,
            card_number=payload["card_number"],
            holder_token=payload["holder_token"],
        )

    async def card_number(self, card: CardRecord) -> str:
        return await self._open(card, "card_number")

    async def card_view(self, card: CardRecord) -> CardView:
        """The card as last recorded by the gateway."""
        return CardView(
            essc_id=card.essc_id,
            physical_card_number_masked=mask_card_number(await self.card_number(card)),
            status=CardStatus(card.status),
            issued_at=card.issued_at,
            agreement_version=card.consent_version,
        )
