"""Key management's cost (K7): how fast a key incident's re-encryption runs, and what it does
to reading holders' data meanwhile.

A fresh SQLite store gets `holders` holders with a card each, sealed under their holder keys;
the bank's DATA key is declared compromised; the mover re-keys every holder (a fresh holder
key, the card's fields opened and sealed again, one transaction per batch of 50) with no
throttle. Meanwhile a reader opens random holders' ID numbers as Query does (holder key from
the store, then the field): its p99 during the job is compared with the same reads before.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from essc_gateway.store.opening import GatewayStore, open_store

BANK = "bench-bank"


async def _seed(store: GatewayStore, vault: Vault, holders: int) -> list[CardRecord]:
    now = datetime.now(UTC)
    cards = []
    for i in range(holders):
        essc_id, id_number = f"E{i:07d}", f"{110105199003070000 + i}"
        token = vault.holder_token(BANK, id_number)
        holder, new_key = await vault.key_for_new_card(BANK, token, now)

        def seal(field: str, value: str, key: HolderKey = holder, e: str = essc_id) -> bytes:
            return vault.seal(key, BANK, e, field, value)

        card = CardRecord(
            essc_id=essc_id, bank_id=BANK, holder_token=token, name_sealed=seal("name", "x"),
            id_number_sealed=seal("id_number", id_number), phone_sealed=seal("phone", "x"),
            card_number_sealed=seal("card_number", "A1234567"), status="ACTIVE", issued_at=now,
            consent_version="2024-03-20", consent_accepted_at=now, consent_channel="MOBILE_APP",
        )  # fmt: skip
        claim = await store.claim_issue(BANK, essc_id, "f", now, now + timedelta(hours=1), None)
        await store.complete_issue(
            BANK, essc_id, "ISSUED", essc_id, card, now, claim.token, new_key
        )
        cards.append(card)
    return cards


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def measure_rekey(directory: Path, holders: int, suite: Suite) -> dict[str, Any]:
    """Re-encryption records per second and read p99 (ms) before and during the job.
    `directory` exists and is empty."""
    store = await open_store(directory / "keys-bench.db", "FULL")
    clock = SystemClock()
    keys = KeyHierarchy(store, FileRoot.open(directory / "root.key", create=True), clock)
    try:
        await keys.open_banks({BANK: suite})
        holder_keys = HolderKeys(store, keys)
        vault = Vault(keys, holder_keys)
        mover = HolderKeyMover(store, keys, holder_keys, vault, clock, "bench", rate=1e9, batch=50)
        custodian = KeyCustodian(store, keys, clock, {BANK: suite}, timedelta(minutes=5), mover)
        cards = await _seed(store, vault, holders)
        rng = random.Random(7)  # noqa: S311 - which holder to read, nothing secret

        async def read(stop: asyncio.Event, samples: list[float]) -> None:
            while not stop.is_set():
                card = rng.choice(cards)
                reader = Vault(keys, HolderKeys(store, keys))  # nothing cached
                started = time.perf_counter()
                current = await store.get_card(card.essc_id)
                assert current is not None
                await reader.id_number(current)
                samples.append(time.perf_counter() - started)
                await asyncio.sleep(0.002)

        idle: list[float] = []
        stop = asyncio.Event()
        reader_task = asyncio.create_task(read(stop, idle))
        await asyncio.sleep(1.0)
        stop.set()
        await reader_task
        await custodian.declare_compromised(BANK, KeyPurpose.DATA, 1, "bench", "bench")
        during: list[float] = []
        stop = asyncio.Event()
        reader_task = asyncio.create_task(read(stop, during))
        started = time.monotonic()
        await mover.work_once()
        elapsed = time.monotonic() - started
        stop.set()
        await reader_task
        [job] = await store.key_jobs()
        return {
            "holders": holders,
            "suite": suite.name,
            "rekeyed": job.done,
            "seconds": round(elapsed, 2),
            "records_per_second": round(job.done / elapsed, 1),
            "read_p99_ms_idle": round(_p99(idle), 3),
            "read_p99_ms_during": round(_p99(during), 3),
        }
    finally:
        await keys.close()
        await store.close()
