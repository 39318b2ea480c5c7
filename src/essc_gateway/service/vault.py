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

    def __init__(self, keys: KeyHierarchy) -> None:
        self._keys = keys

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

    def seal(self, bank_id: str, essc_id: str, field: str, value: str) -> bytes:
        return self._keys.bank(bank_id).seal(value.encode(), _place(CARDS_TABLE, essc_id, field))

    def _open(self, card: CardRecord, field: str, sealed: bytes) -> str:
        return (
            self._keys.bank(card.bank_id)
            .open(sealed, _place(CARDS_TABLE, card.essc_id, field))
            .decode()
        )

    def seal_guardian(self, bank_id: str, essc_id: str, guardian: Guardian) -> bytes:
        payload = json.dumps(
            {
                "name": guardian.name,
                "id_number": guardian.citizen_id.value,
                "mobile_phone": guardian.mobile_phone,
            }
        )
        return self.seal(bank_id, essc_id, "guardian", payload)

    def id_number(self, card: CardRecord) -> str:
        return self._open(card, "id_number", card.id_number_sealed)

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

    def card_number(self, card: CardRecord) -> str:
        return self._open(card, "card_number", card.card_number_sealed)

    def card_view(self, card: CardRecord) -> CardView:
        """The card as last recorded by the gateway."""
        return CardView(
            essc_id=card.essc_id,
            physical_card_number_masked=mask_card_number(self.card_number(card)),
            status=CardStatus(card.status),
            issued_at=card.issued_at,
            agreement_version=card.consent_version,
        )
