"""Personal data in and out of the store: sealed per field, found by keyed tokens (A13(1))."""

from __future__ import annotations

import json

from essc_gateway.crypto import FieldCipher, LookupHasher
from essc_gateway.domain.models import Guardian
from essc_gateway.store.base import CardRecord

CARDS_TABLE = "cards"


class Vault:
    """The only code that turns personal data into ciphertexts and lookup tokens."""

    def __init__(self, cipher: FieldCipher, hasher: LookupHasher) -> None:
        self._cipher = cipher
        self._hasher = hasher

    def holder_token(self, id_number: str) -> str:
        return self._hasher.token("citizen_id", id_number)

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
