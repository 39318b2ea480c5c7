"""The ledger's table, on both adapters: concurrent appends share commits, one evidence log
with no fork and no gap."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from essc_gateway.evidence.audit import audit_log
from essc_gateway.liability.model import Clause, LiabilityRecord
from essc_gateway.store.base import DuplicateRecord
from essc_gateway.store.opening import GatewayStore

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(any_store: GatewayStore) -> GatewayStore:
    return any_store


def record(n: int) -> LiabilityRecord:
    return LiabilityRecord(
        seq=0,
        request_id=f"r-{n}",
        trace_id="",
        bank_id="bank-a",
        rpc="Verify",
        at=NOW,
        status_code="UNAVAILABLE",
        reason="MAINTENANCE_WINDOW",
        clause=Clause.A16_1_A,
        evidence={"window_id": "mw-1"},
    )


async def all_records(store: GatewayStore) -> list[LiabilityRecord]:
    return await store.liability_records(NOW, NOW + timedelta(seconds=1))


async def test_concurrent_appends_form_one_log_with_no_gap(store: GatewayStore) -> None:
    appended = await asyncio.gather(*(store.append_liability(record(n)) for n in range(60)))
    assert sorted(r.seq for r in appended) == list(range(1, 61))
    assert sorted(r.log_index or 0 for r in appended) == list(range(60))
    audit = await audit_log(store, None)
    assert audit.problems == ()
    assert (await store.log_head()).size == 60


async def test_a_failed_append_is_reported_to_its_caller(store: GatewayStore) -> None:
    await store.append_liability(record(1))
    with pytest.raises(DuplicateRecord):  # the same request id twice
        await store.append_liability(record(1))
    assert len(await all_records(store)) == 1
    assert (await store.log_head()).size == 1  # nothing of the refused append was logged


async def test_lingering_appends_are_committed_together_without_a_waiter(
    store: GatewayStore,
) -> None:
    queued = [store.enqueue_liability(record(n), linger=0.05) for n in range(5)]
    committed = await asyncio.wait_for(asyncio.gather(*queued), timeout=5)
    assert [r.seq for r in committed] == [1, 2, 3, 4, 5]
    assert (await audit_log(store, None)).intact


async def test_an_awaited_append_ends_the_linger_of_those_queued_before_it(
    store: GatewayStore,
) -> None:
    lingering = store.enqueue_liability(record(1), linger=30.0)
    # Were the linger not cut short, this would wait 30 s and time out.
    awaited = await asyncio.wait_for(store.append_liability(record(2)), timeout=5)
    assert lingering.done()
    assert [lingering.result().seq, awaited.seq] == [1, 2]


async def test_a_read_ends_the_linger_and_sees_the_record(store: GatewayStore) -> None:
    store.enqueue_liability(record(1), linger=30.0)
    records = await asyncio.wait_for(all_records(store), timeout=5)
    assert [r.request_id for r in records] == ["r-1"]
