"""Personal data in and out of the store: sealed per field, found by keyed tokens (A13(1))."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from essc_gateway.crypto import FieldCipher, LookupHasher
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


class Vault:
    """The only code that turns personal data into ciphertexts and lookup tokens."""

    def __init__(self, cipher: FieldCipher, hasher: LookupHasher) -> None:
        self._cipher = cipher
        self._hasher = hasher

    def holder_token(self, id_number: str) -> str:
        """The same token however the ID was spelt (a raw one from a failed request, too)."""
        return self._hasher.token("citizen_id", normalise_id_text(id_number))

    def token(self, purpose: str, value: str) -> str:
        return self._hasher.token(purpose, value)

    def seal(self, essc_id: str, field: str, value: str) -> bytes:
        return self._cipher.seal(value, table=CARDS_TABLE, row_id=essc_id, field=field)

    def seal_guardian(self, essc_id: str, guardian: Guardian) -> bytes:
        payload = json.dumps(
            {
                "name": guardian.name,
                "id_number": guardian.citizen_id.value,
                "mobile_phone": guardian.mobile_phone,
            }
        )
        return self.seal(essc_id, "guardian", payload)

    def id_number(self, card: CardRecord) -> str:
        return self._cipher.open(
            card.id_number_sealed, table=CARDS_TABLE, row_id=card.essc_id, field="id_number"
        )

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
        return self._cipher.seal(
            json.dumps(payload, ensure_ascii=False),
            table=FORWARD_TABLE,
            row_id=f"{draft.bank_id}:{draft.idempotency_key}",
            field="payload",
        )

    def open_draft(
        self, bank_id: str, idempotency_key: str, sealed: bytes, today: date
    ) -> IssueDraft:
        payload = json.loads(
            self._cipher.open(
                sealed, table=FORWARD_TABLE, row_id=f"{bank_id}:{idempotency_key}", field="payload"
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
        return self._cipher.open(
            card.card_number_sealed, table=CARDS_TABLE, row_id=card.essc_id, field="card_number"
        )

    def card_view(self, card: CardRecord) -> CardView:
        """The card as last recorded by the gateway."""
        return CardView(
            essc_id=card.essc_id,
            physical_card_number_masked=mask_card_number(self.card_number(card)),
            status=CardStatus(card.status),
            issued_at=card.issued_at,
            agreement_version=card.consent_version,
        )
