"""The hierarchy below the root, on SQLite and PostgreSQL: a bank's first keys are made once
however many replicas start together, stored only wrapped, logged as key events; one bank's
keys never open another's data, and the same person has unlinkable tokens at two banks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from essc_gateway.evidence.entries import EntryKind
from essc_gateway.keys.hierarchy import KeyHierarchy, KeyLoadError
from essc_gateway.keys.keyring import DecryptionError
from essc_gateway.keys.model import KeyPurpose
from essc_gateway.keys.root import FileRoot
from essc_gateway.keys.suites import Suite
from essc_gateway.store.base import CardRecord
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import GatewayStore, open_store
from essc_gateway.testing import FakeClock
from tests.conftest import root_key_path

BANKS = {"bank-a": Suite.AES256_GCM_HMAC_SHA256, "bank-b": Suite.SM4_GCM_HMAC_SM3}


@pytest.fixture
async def store(database: StoreLocation) -> AsyncIterator[GatewayStore]:
    opened = await open_store(database)
    yield opened
    await opened.close()


def _hierarchy(store: GatewayStore, database: StoreLocation, clock: FakeClock) -> KeyHierarchy:
    return KeyHierarchy(store, FileRoot.open(root_key_path(database), create=True), clock)


async def test_replicas_starting_together_make_one_set_of_keys_per_bank(
    database: StoreLocation, store: GatewayStore, clock: FakeClock
) -> None:
    second = await open_store(database)
    try:
        one, two = _hierarchy(store, database, clock), _hierarchy(second, database, clock)
        await asyncio.gather(one.open_banks(BANKS), two.open_banks(BANKS))
        versions = await store.key_versions()
        assert sorted((v.bank_id, v.purpose, v.version) for v in versions) == sorted(
            (bank, purpose, 1) for bank in BANKS for purpose in KeyPurpose
        )
        assert {v.suite for v in versions if v.bank_id == "bank-b"} == {Suite.SM4_GCM_HMAC_SM3}
        # Both replicas hold the same keys: what one seals, the other opens.
        sealed = one.bank("bank-a").seal(b"110105199003071234", "cards\x1fe1\x1fid_number")
        assert two.bank("bank-a").open(sealed, "cards\x1fe1\x1fid_number") == b"110105199003071234"
        assert one.bank("bank-b").lookup_token("x") == two.bank("bank-b").lookup_token("x")
    finally:
        await second.close()


async def test_each_key_is_stored_wrapped_and_its_making_is_in_the_evidence_log(
    database: StoreLocation, store: GatewayStore, clock: FakeClock
) -> None:
    keys = _hierarchy(store, database, clock)
    await keys.open_banks(BANKS)
    versions = await store.key_versions()
    entries = await store.log_entries_for(EntryKind.KEY_EVENT, [v.key_id for v in versions])
    assert sorted(e.ref for e in entries) == sorted(v.key_id for v in versions)
    for entry in entries:
        event = json.loads(entry.body)
        assert event["event"] == "GENERATED"
        assert event["by"] == "gateway"
        assert set(event) == {
            "kind", "event", "key_id", "bank_id", "purpose", "version", "suite", "at", "by",
            "detail",
        }  # fmt: skip
    # A second start makes nothing: it unwraps what is there.
    again = _hierarchy(store, database, clock)
    await again.open_banks(BANKS)
    assert len(await store.key_versions()) == len(versions)
    assert again.root_unwraps == len(BANKS)  # one root round trip per bank key, none else


async def test_a_bank_never_opens_another_banks_data_and_tokens_are_unlinkable(
    database: StoreLocation, store: GatewayStore, clock: FakeClock
) -> None:
    keys = _hierarchy(store, database, clock)
    await keys.open_banks(
        {"bank-a": Suite.AES256_GCM_HMAC_SHA256, "bank-c": Suite.AES256_GCM_HMAC_SHA256}
    )
    a, c = keys.bank("bank-a"), keys.bank("bank-c")
    place = "cards\x1fe1\x1fid_number"
    sealed = a.seal(b"110105199003071234", place)
    assert b"110105199003071234" not in sealed
    with pytest.raises(DecryptionError):
        c.open(sealed, place)
    with pytest.raises(DecryptionError):
        a.open(sealed, "cards\x1fe2\x1fid_number")  # moved to another row
    person = "citizen_id\x1f110105199003071234"
    assert a.lookup_token(person) != c.lookup_token(person)
    assert a.lookup_token(person).split(".")[1] != c.lookup_token(person).split(".")[1]
    token = a.seal_token(b'{"b":"bank-a"}', "at1")
    with pytest.raises(DecryptionError):
        c.open_token(token, "at1")


async def test_keys_of_another_root_do_not_load(
    database: StoreLocation, store: GatewayStore, clock: FakeClock, tmp_path: Path
) -> None:
    await _hierarchy(store, database, clock).open_banks(BANKS)
    stranger = KeyHierarchy(store, FileRoot.open(tmp_path / "other.key", create=True), clock)
    with pytest.raises(KeyLoadError, match="bank-a/BANK/v1"):
        await stranger.open_banks(BANKS)


async def test_a_store_with_cards_but_no_keys_is_refused_with_a_clear_message(
    database: StoreLocation, store: GatewayStore, clock: FakeClock
) -> None:
    # A card as 0.1.0 stored it, sealed by flat keys this version does not have.
    now = clock.now()
    claim = await store.claim_issue("bank-a", "k1", "f", now, now, None)
    card = CardRecord(
        essc_id="E1", bank_id="bank-a", holder_token="legacy", name_sealed=b"x",
        id_number_sealed=b"x", phone_sealed=b"x", card_number_sealed=b"x", status="ACTIVE",
        issued_at=now, consent_version="2024-03-20", consent_accepted_at=now,
        consent_channel="MOBILE_APP",
    )  # fmt: skip
    await store.complete_issue("bank-a", "k1", "ISSUED", "E1", card, now, claim.token)
    with pytest.raises(KeyLoadError, match=r"flat keys of version 0\.1\.0"):
        await _hierarchy(store, database, clock).open_banks(BANKS)
