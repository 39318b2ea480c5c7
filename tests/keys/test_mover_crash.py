"""kill -9 during a key incident's re-encryption, on SQLite and PostgreSQL: the replica doing
it dies mid-job; once its lease has run out another replica resumes the job; every holder key
is replaced exactly once (the job counts each move once, and every card still opens, with
the value it was sealed with), nothing is lost."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from essc_gateway.clock import SystemClock
from essc_gateway.keys.custodian import KeyCustodian
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.keyring import HolderKey
from essc_gateway.keys.model import KeyPurpose
from essc_gateway.keys.mover import HolderKeyMover
from essc_gateway.keys.root import FileRoot
from essc_gateway.keys.suites import Suite
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import GatewayStore, open_store
from tests.conftest import root_key_path

BANKS = {"bank-a": Suite.AES256_GCM_HMAC_SHA256}
HOLDERS = 300
LEASE = timedelta(seconds=1)

DOOMED_REPLICA = """
import asyncio, sys
from datetime import timedelta
from pathlib import Path
from essc_gateway.clock import SystemClock
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.keyring import HolderKey
from essc_gateway.keys.mover import HolderKeyMover
from essc_gateway.keys.root import FileRoot
from essc_gateway.keys.suites import Suite
from essc_gateway.service.vault import Vault
from essc_gateway.store.location import parse_store_location
from essc_gateway.store.opening import open_store

async def main() -> None:
    store = await open_store(parse_store_location(sys.argv[1]))
    keys = KeyHierarchy(store, FileRoot.open(Path(sys.argv[2]), create=False), SystemClock())
    await keys.open_banks({"bank-a": Suite.AES256_GCM_HMAC_SHA256}, make_missing=False)
    holder_keys = HolderKeys(store, keys)
    mover = HolderKeyMover(
        store, keys, holder_keys, Vault(keys, holder_keys), SystemClock(), "doomed",
        rate=300, batch=10, lease=timedelta(seconds=1),
    )
    await mover.work_once()

asyncio.run(main())
"""


def _location_text(database: StoreLocation) -> str:
    return str(database) if isinstance(database, Path) else database.dsn


async def _seed(store: GatewayStore, vault: Vault) -> dict[str, str]:
    """HOLDERS holders with a card each; returns essc_id -> the ID number sealed in it."""
    sealed: dict[str, str] = {}
    now = datetime.now(UTC)
    for i in range(HOLDERS):
        essc_id, id_number = f"E{i:06d}", f"{110105199003070000 + i}"
        holder_token = vault.holder_token("bank-a", id_number)
        holder, new_key = await vault.key_for_new_card("bank-a", holder_token, now)

        def seal(field: str, value: str, key: HolderKey = holder, e: str = essc_id) -> bytes:
            return vault.seal(key, "bank-a", e, field, value)

        card = CardRecord(
            essc_id=essc_id, bank_id="bank-a", holder_token=holder_token,
            name_sealed=seal("name", "name"), id_number_sealed=seal("id_number", id_number),
            phone_sealed=seal("phone", "+8613800000000"),
            card_number_sealed=seal("card_number", "A12345678"), status="ACTIVE",
            issued_at=now, consent_version="2024-03-20", consent_accepted_at=now,
            consent_channel="MOBILE_APP",
        )  # fmt: skip
        claim = await store.claim_issue("bank-a", essc_id, "f", now, now + LEASE * 60, None)
        await store.complete_issue(
            "bank-a", essc_id, "ISSUED", essc_id, card, now, claim.token, new_key
        )
        sealed[essc_id] = id_number
    return sealed


@pytest.mark.timeout(120)
async def test_a_reencryption_killed_midway_resumes_and_moves_each_key_once(
    database: StoreLocation,
) -> None:
    store = await open_store(database, "NORMAL")
    clock = SystemClock()
    root = FileRoot.open(root_key_path(database), create=True)
    keys = KeyHierarchy(store, root, clock)
    try:
        await keys.open_banks(BANKS)
        holder_keys = HolderKeys(store, keys)
        vault = Vault(keys, holder_keys)
        sealed = await _seed(store, vault)
        survivor = HolderKeyMover(
            store, keys, holder_keys, vault, clock, "survivor", rate=5000, batch=50, lease=LEASE
        )
        custodian = KeyCustodian(store, keys, clock, BANKS, timedelta(minutes=5), survivor)
        report = await custodian.declare_compromised(
            "bank-a", KeyPurpose.DATA, 1, "custodian-1", "test: a DATA key leaked"
        )
        assert report.reencryption is not None
        assert report.reencryption.total == HOLDERS

        doomed = await asyncio.create_subprocess_exec(
            sys.executable, "-c", DOOMED_REPLICA, _location_text(database),
            str(root_key_path(database)),
        )  # fmt: skip
        while True:  # until it is well into the job
            [job] = await store.key_jobs()
            if job.done >= 60:
                break
            assert doomed.returncode is None, "the doomed replica ended by itself"
            await asyncio.sleep(0.02)
        doomed.kill()  # SIGKILL: no cleanup, its lease stays until it runs out
        await doomed.wait()
        [job] = await store.key_jobs()
        assert job.holder == "doomed"
        assert 0 < job.done < HOLDERS

        await survivor.work_once()  # the lease is the doomed replica's: nothing
        assert (await store.key_jobs())[0].done == job.done
        await asyncio.sleep(LEASE.total_seconds() + 0.2)
        await survivor.work_once()

        [finished] = await store.key_jobs()
        assert finished.finished_at is not None
        assert (finished.done, finished.total) == (HOLDERS, HOLDERS)
        assert await store.count_holder_keys_to_move("bank-a", 2) == 0
        fresh = Vault(keys, HolderKeys(store, keys))  # nothing cached: from the store
        for essc_id, id_number in sealed.items():
            card = await store.get_card(essc_id)
            assert card is not None
            assert await fresh.id_number(card) == id_number
    finally:
        await keys.close()
        await store.close()
