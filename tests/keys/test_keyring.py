"""A bank's keys in use (A13(1)): values sealed bound to bank, row and field, naming their
suite and key version so that older versions still open after a rotation; keyed lookup
tokens that find rows under any held version; tokens that open only as their own kind."""

from __future__ import annotations

import secrets

import pytest

from essc_gateway.crypto import DecryptionError, TokenSealer
from essc_gateway.keys.keyring import FORMAT, BankKeyring, KeySet, SealingKey
from essc_gateway.keys.suites import Mac, Suite, aead


def _keyset(suite: Suite, versions: tuple[int, ...]) -> KeySet:
    keys = KeySet()
    for version in versions:
        key = aead(suite, secrets.token_bytes(suite.key_bytes))
        keys.by_version[version] = SealingKey(version, suite, key)
    keys.current = max(versions)
    return keys


def _keyring(
    suite: Suite = Suite.AES256_GCM_HMAC_SHA256,
    data: KeySet | None = None,
    lookups: dict[int, Mac] | None = None,
) -> BankKeyring:
    lookups = lookups or {1: Mac(suite, secrets.token_bytes(32))}
    return BankKeyring(
        "bank-a", data or _keyset(suite, (1,)), _keyset(suite, (1,)), lookups, max(lookups)
    )


@pytest.mark.parametrize("suite", list(Suite))
def test_a13_a_field_round_trips_names_its_suite_and_is_not_in_clear(suite: Suite) -> None:
    keyring = _keyring(suite)
    sealed = keyring.seal("张三".encode(), "cards\x1fE1\x1fname")
    assert "张三".encode() not in sealed
    assert (sealed[0], sealed[1], keyring.data_version_of(sealed)) == (FORMAT, suite, 1)
    assert keyring.open(sealed, "cards\x1fE1\x1fname").decode() == "张三"


@pytest.mark.parametrize("place", ["cards\x1fE2\x1fname", "cards\x1fE1\x1fphone"])
def test_a13_a_ciphertext_moved_to_another_row_or_field_does_not_open(place: str) -> None:
    keyring = _keyring()
    sealed = keyring.seal(b"x", "cards\x1fE1\x1fname")
    with pytest.raises(DecryptionError):
        keyring.open(sealed, place)


def test_a_header_changed_to_another_version_or_suite_does_not_open() -> None:
    data = _keyset(Suite.AES256_GCM_HMAC_SHA256, (1, 2))
    keyring = _keyring(data=data)
    sealed = keyring.seal(b"x", "p")
    for changed in (sealed[:3] + bytes([1]) + sealed[4:], sealed[:1] + b"\x02" + sealed[2:]):
        with pytest.raises(DecryptionError):
            keyring.open(changed, "p")


def test_older_versions_still_open_after_a_rotation_and_the_newest_seals() -> None:
    suite = Suite.AES256_GCM_HMAC_SHA256
    old = _keyset(suite, (1,))
    sealed = _keyring(data=old).seal(b"x", "p")
    rotated = KeySet({**old.by_version, **_keyset(suite, (2,)).by_version}, current=2)
    keyring = _keyring(data=rotated)
    assert keyring.open(sealed, "p") == b"x"
    assert keyring.data_version_of(keyring.seal(b"x", "p")) == 2


def test_lookup_tokens_depend_on_the_key_and_any_held_version_finds_a_row() -> None:
    one = Mac(Suite.AES256_GCM_HMAC_SHA256, secrets.token_bytes(32))
    two = Mac(Suite.SM4_GCM_HMAC_SM3, secrets.token_bytes(32))
    before = _keyring(lookups={1: one})
    during = _keyring(lookups={1: one, 2: two})
    value = "citizen_id\x1f11010519491231002X"
    assert before.lookup_token(value) == before.lookup_token(value)
    assert before.lookup_token(value).startswith("1.")
    assert during.lookup_token(value).startswith("2.")
    assert before.lookup_token(value) in during.lookup_tokens(value)
    assert before.lookup_token(value) != before.lookup_token("phone\x1f11010519491231002X")


def test_a_token_of_one_kind_or_bank_does_not_open_as_another() -> None:
    keyring = _keyring()
    sealer = TokenSealer({"bank-a": keyring}.__getitem__)
    token = sealer.seal("bank-a", "vt1", {"b": "bank-a"})
    assert sealer.open("bank-a", "vt1", token) == {"b": "bank-a"}
    with pytest.raises(DecryptionError):
        sealer.open("bank-a", "at1", "at1." + token.partition(".")[2])
    with pytest.raises(DecryptionError):
        sealer.open("bank-z", "vt1", token)


def test_a_compromised_token_key_opens_no_token_but_data_still_moves() -> None:
    suite = Suite.AES256_GCM_HMAC_SHA256
    data, tokens = _keyset(suite, (1,)), _keyset(suite, (1,))
    lookups = {1: Mac(suite, secrets.token_bytes(32))}
    keyring = BankKeyring("bank-a", data, tokens, lookups, 1)
    token, sealed = keyring.seal_token(b"{}", "at1"), keyring.seal(b"x", "p")
    refused = frozenset({1})
    compromised = BankKeyring(
        "bank-a",
        KeySet(data.by_version, 1, refused),
        KeySet(tokens.by_version, 1, refused),
        lookups,
        1,
    )
    with pytest.raises(DecryptionError):
        compromised.open_token(token, "at1")
    assert compromised.open(sealed, "p") == b"x"


def test_no_key_material_in_a_repr() -> None:
    raw = secrets.token_bytes(32)
    mac = Mac(Suite.AES256_GCM_HMAC_SHA256, raw)
    keyring = _keyring(lookups={1: mac})
    for shown in (
        repr(mac),
        repr(keyring),
        repr(SealingKey(1, Suite.SM4_GCM_HMAC_SM3, aead(Suite.SM4_GCM_HMAC_SM3, raw[:16]))),
    ):
        assert raw.hex() not in shown
        assert repr(raw) not in shown
        assert repr(raw[:16]) not in shown
