"""Erasures of many holders: a bank stopping the service (A14(5)) erased as one resumable
job, a kill midway finished by another replica; the daily retention run (A13(3), A14(4))
erasing terminated holders and the guardian data of holders who came of age, once across
replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.privacy.erasure import HolderErasure
from essc_gateway.privacy.jobs import ErasureJobs
from essc_gateway.privacy.model import RetentionSettings
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest, make_config, running_gateway
from tests.gateway.flows import _age, adult, child_under_14, guardian_of, issue
from tests.polling import eventually
from tests.sql import count, execute, fetch

RETENTION = RetentionSettings(
    after_termination=timedelta(days=30), guardian_after_majority=timedelta(days=10)
)


@pytest.fixture
async def gw(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> AsyncIterator[GatewayUnderTest]:
    """Background jobs off: each test works the erasure jobs itself, as replicas would."""
    config = make_config(database, retention=RETENTION)
    async with running_gateway(platform, clock, config, background_jobs=False) as running:
        yield running


def _replica(gw: GatewayUnderTest, clock: FakeClock, name: str, pause: float) -> ErasureJobs:
    """Another replica's job worker over the same store, a holder per batch."""
    gateway = gw.gateway
    store, vault = gateway._store, gateway.key_management.vault
    assert store is not None
    return ErasureJobs(
        store, HolderErasure(store, vault, clock), vault, clock, name, ("bank-a", "bank-b"),
        RETENTION, batch=1, pause=pause,
    )  # fmt: skip


async def test_a_bank_stopping_the_service_is_erased_whole_even_after_a_kill(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    today = clock.now().date()
    for n in range(3):
        await issue(gw, adult(population, today, skip=n), gw.a, clock.now())
    other_bank = adult(population, today, skip=5)
    await issue(gw, other_bank, gw.b, clock.now())

    started = await gw.operator.EraseBank(
        opb.EraseBankRequest(bank_id="bank-a", reference="bank-a leaves 2026-12-31"),
        metadata=gw.ops,
    )
    assert started.job.kind == opb.ERASURE_JOB_KIND_BANK_STOPPED

    # The first replica erases one holder, then is killed while it pauses.
    first = _replica(gw, clock, "replica-1", pause=3600)
    killed = asyncio.create_task(first.work_once())

    async def one_erased() -> bool:
        return await count(database, "evidence_log", "kind = 'ERASURE'") >= 1

    await eventually(one_erased)
    killed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killed
    assert await count(database, "cards", "bank_id = 'bank-a'") == 2
    jobs = await gw.operator.ListErasureJobs(opb.ListErasureJobsRequest(), metadata=gw.ops)
    [job] = [j for j in jobs.jobs if j.kind == opb.ERASURE_JOB_KIND_BANK_STOPPED]
    assert (job.erased, job.HasField("finished_at")) == (1, False)

    # Another replica takes it over once the lease ran out, and finishes it.
    second = _replica(gw, clock, "replica-2", pause=0)
    await second.work_once()  # the first one's lease still runs: nothing
    assert await count(database, "cards", "bank_id = 'bank-a'") == 2
    clock.advance(timedelta(minutes=1))
    await second.work_once()
    assert await count(database, "cards", "bank_id = 'bank-a'") == 0
    assert await count(database, "holder_keys", "bank_id = 'bank-a'") == 0
    assert await count(database, "cards", "bank_id = 'bank-b'") == 1  # another bank's stays
    jobs = await gw.operator.ListErasureJobs(opb.ListErasureJobsRequest(), metadata=gw.ops)
    [job] = [j for j in jobs.jobs if j.kind == opb.ERASURE_JOB_KIND_BANK_STOPPED]
    assert (job.erased, job.HasField("finished_at")) == (3, True)
    entries = await fetch(database, "SELECT body FROM evidence_log WHERE kind = 'ERASURE'")
    assert len(entries) == 3
    assert all(b"SERVICE_ENDED_BY_BANK" in bytes(e["body"]) for e in entries)
    audit = await gw.operator.VerifyLedger(opb.VerifyLedgerRequest(), metadata=gw.ops)
    assert audit.intact, audit.problems


async def test_retention_erases_terminated_holders_and_guardians_of_adults_once(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    today = clock.now().date()
    leaving, staying = adult(population, today), adult(population, today, skip=1)
    child = child_under_14(population, today)
    parent = adult(population, today, skip=2)
    ended = await issue(gw, leaving, gw.a, clock.now())
    await issue(gw, staying, gw.a, clock.now())
    await issue(gw, child, gw.a, clock.now(), guardian=guardian_of(parent))
    store = gw.gateway._store
    assert store is not None
    await store.set_card_status(ended.card.essc_id, "TERMINATED", clock.now())

    # Within retention: nothing goes.
    replicas = [_replica(gw, clock, f"replica-{n}", pause=0) for n in range(2)]
    for replica in replicas:
        await replica.schedule_retention()
        await replica.work_once()
    assert await count(database, "cards") == 3
    assert await count(database, "cards", "guardian_sealed IS NOT NULL") == 1

    # 31 days on: the terminated holder goes, the others stay, the child is still a minor.
    clock.advance(timedelta(days=31))
    await asyncio.gather(*(r.schedule_retention() for r in replicas))
    await asyncio.gather(*(r.work_once() for r in replicas))
    assert await count(database, "cards") == 2
    assert await count(database, "cards", f"essc_id = '{ended.card.essc_id}'") == 0
    runs = await fetch(database, "SELECT job_id FROM erasure_jobs WHERE kind = 'RETENTION'")
    assert len(runs) == 2 * 2  # one per bank and day, however many replicas asked
    [entry] = await fetch(database, "SELECT body FROM evidence_log WHERE kind = 'ERASURE'")
    assert b"RETENTION_ENDED" in bytes(entry["body"])

    # The child came of age 18 years on, plus the guardian retention: the guardian's data
    # goes, the holder's card stays.
    clock.advance(timedelta(days=18 * 366 + 11))
    await replicas[0].schedule_retention()
    await replicas[0].work_once()
    assert await count(database, "cards", "guardian_sealed IS NOT NULL") == 0
    assert await count(database, "cards") == 2


async def test_the_guardian_scan_pages_and_outlives_a_card_it_cannot_judge(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """Guardian cards are read a page at a time (the lease renewed after each); one whose
    ID number does not open is logged and left, the others are cleared, the run ends."""
    today = clock.now().date()
    children = [p for p in population.people if _age(p, today) < 14][:3]
    parent = adult(population, today)
    cards = [
        (await issue(gw, child, gw.a, clock.now(), guardian=guardian_of(parent))).card.essc_id
        for child in children
    ]
    assert len(cards) == 3
    unreadable = sorted(cards)[1]
    await execute(
        database,
        "UPDATE cards SET id_number_sealed = ? WHERE essc_id = ?",
        b"\xe5" * 40,
        unreadable,
    )
    clock.advance(timedelta(days=32 * 366))  # every child of age, and the guardian retention
    replica = _replica(gw, clock, "replica-1", pause=0)  # a card per page
    await replica.schedule_retention()
    await replica.work_once()
    left = await fetch(database, "SELECT essc_id FROM cards WHERE guardian_sealed IS NOT NULL")
    assert [r["essc_id"] for r in left] == [unreadable]
    jobs = await gw.operator.ListErasureJobs(opb.ListErasureJobsRequest(), metadata=gw.ops)
    assert all(j.HasField("finished_at") for j in jobs.jobs)
