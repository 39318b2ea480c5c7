"""Protection of personal data (A13(1)): AES-GCM bound to row and field, keyed lookups."""

from __future__ import annotations

import secrets

import pytest

from essc_gateway.crypto import DecryptionError, FieldCipher, KeyRing, LookupHasher, TokenSealer


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.single(secrets.token_bytes(32)))


def test_a13_a_field_round_trips_and_is_not_in_clear(cipher: FieldCipher) -> None:
    sealed = cipher.seal("张三", table="cards", row_id="E1", field="name")
    assert "张三".encode() not in sealed
    assert cipher.open(sealed, table="cards", row_id="E1", field="name") == "张三"


@pytest.mark.parametrize(("row_id", "field"), [("E2", "name"), ("E1", "phone")])
def test_a13_a_ciphertext_moved_to_another_row_or_field_does_not_open(
    cipher: FieldCipher, row_id: str, field: str
) -> None:
    sealed = cipher.seal("张三", table="cards", row_id="E1", field="name")
    with pytest.raises(DecryptionError):
        cipher.open(sealed, table="cards", row_id=row_id, field=field)


def test_old_keys_still_open_after_rotation() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    sealed = FieldCipher(KeyRing.single(old)).seal("x", table="t", row_id="r", field="f")
    rotated = FieldCipher(KeyRing({1: old, 2: new}, current=2))
    assert rotated.open(sealed, table="t", row_id="r", field="f") == "x"
    assert rotated.seal("x", table="t", row_id="r", field="f")[0] == 2


def test_lookup_tokens_depend_on_the_key() -> None:
    first = LookupHasher(secrets.token_bytes(32))
    second = LookupHasher(secrets.token_bytes(32))
    value = "11010519491231002X"
    assert first.token("citizen_id", value) == first.token("citizen_id", value)
    assert first.token("citizen_id", value) != second.token("citizen_id", value)
    assert first.token("citizen_id", value) != first.token("phone", value)


def test_a_token_of_one_kind_does_not_open_as_another() -> None:
    sealer = TokenSealer(KeyRing.single(secrets.token_bytes(32)))
    token = sealer.seal("vt1", {"b": "bank-a"})
    assert sealer.open("vt1", token) == {"b": "bank-a"}
    with pytest.raises(DecryptionError):
        sealer.open("at1", "at1." + token.partition(".")[2])
