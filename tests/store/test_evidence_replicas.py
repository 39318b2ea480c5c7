"""The evidence of outages and late incidents with two replicas on one store (SQLite and
PostgreSQL): an outage dates from the first failed attempt's sending and ends at the first
good answer on any replica; an incident declared on one replica amends the records of both,
once each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from essc_gateway.evidence.audit import audit_log
from essc_gateway.liability.amendments import Amender
from essc_gateway.liability.incidents import IncidentBook
from essc_gateway.liability.model import Clause, IncidentKind, LiabilityRecord
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import GatewayStore, open_store
from essc_gateway.testing import FakeClock
from essc_gateway.upstream.outcomes import AttemptFailure, Outcome
from tests.sql import execute

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def two(location: StoreLocation) -> AsyncIterator[tuple[GatewayStore, GatewayStore]]:
    first, second = await open_store(location), await open_store(location)
    yield first, second
    await first.close()
    await second.close()


def hang(sent_at: datetime) -> AttemptFailure:
    """An attempt that hung until its timeout: it failed when it ended, began when sent."""
    return AttemptFailure(
        Outcome.IN_DOUBT, grpc.StatusCode.DEADLINE_EXCEEDED, True, sent_at=sent_at
    )


async def test_an_outage_of_hangs_starts_when_the_first_was_sent(
    two: tuple[GatewayStore, GatewayStore],
) -> None:
    clock = FakeClock(NOW)
    tracker = OutageTracker(two[0], clock, replica_id="r-1")
    for _ in range(3):
        sent = clock.now()
        clock.advance(timedelta(seconds=1.5))  # each hangs 1.5 s
        await tracker.attempt_done("IssueCard", hang(sent))
    outage = tracker.current("IssueCard")
    assert outage is not None
    assert outage.started_at == NOW  # not NOW + 1.5 s, when the first hang ended


async def test_the_first_good_answer_on_any_replica_ends_the_outage(
    two: tuple[GatewayStore, GatewayStore],
) -> None:
    clock = FakeClock(NOW)
    opener = OutageTracker(two[0], clock, replica_id="r-1")
    other = OutageTracker(two[1], clock, replica_id="r-2")
    failure = AttemptFailure(Outcome.REJECTED, grpc.StatusCode.UNAVAILABLE, True)
    for _ in range(3):
        await opener.attempt_done("GetCard", replace(failure, sent_at=clock.now()))
    await other.sync()  # the cluster's open outages, as the shared state delivers them
    clock.advance(timedelta(seconds=20))
    await other.attempt_done("GetCard", None)  # r-2's call succeeds; r-1 sees none yet
    [closed] = await two[0].outages_between(NOW, NOW + timedelta(hours=1))
    assert closed.ended_at == NOW + timedelta(seconds=20)


def record(n: int, arrived: datetime) -> LiabilityRecord:
    return LiabilityRecord(
        seq=0,
        request_id=f"r-{n}",
        trace_id="",
        bank_id="bank-a",
        rpc="Verify",
        at=arrived + timedelta(seconds=2),
        arrived_at=arrived,
        status_code="UNAVAILABLE",
        reason="PLATFORM_UNAVAILABLE",
        clause=Clause.A16_1_B,
        evidence={"platform_reached": "true"},
    )


async def test_a_late_incident_amends_every_replicas_records_once(
    two: tuple[GatewayStore, GatewayStore],
) -> None:
    clock = FakeClock(NOW + timedelta(minutes=30))
    for n in range(6):  # three records on each replica, 0-5 minutes into the storm
        await two[n % 2].append_liability(record(n, NOW + timedelta(minutes=n)))
    await two[0].append_liability(record(9, NOW - timedelta(minutes=5)))  # before it
    books = [
        IncidentBook(store, clock, on_learned=Amender(store, clock).amend_for) for store in two
    ]
    for book in books:
        await book.load()
    incident = await books[0].declare(
        IncidentKind.TYPHOON, NOW, NOW + timedelta(minutes=10), "typhoon", "duty-officer"
    )
    await books[1].load()  # the other replica learns of it and amends too: nothing twice
    for book in books:
        await book.close()
    amendments = await two[1].amendments([f"r-{n}" for n in (0, 1, 2, 3, 4, 5, 9)])
    assert sorted(amendments) == [f"r-{n}" for n in range(6)]
    for made in amendments.values():
        assert len(made) == 1
        assert made[0].clause is Clause.A16_1_C
        assert made[0].previous_clause is Clause.A16_1_B
        assert made[0].incident_id == incident.incident_id
        assert made[0].declared_by == "duty-officer"
        assert made[0].log_index is not None


async def test_what_a_store_kept_before_its_log_is_logged_once_on_upgrade(
    location: StoreLocation,
) -> None:
    """A store upgraded from the hash-chained ledger: its records, windows, incidents,
    outages and counts go into the log at the first start, the same log for every replica."""
    store = await open_store(location)
    clock = FakeClock(NOW)
    await store.add_request_counts([("bank-a", "2026-11-02", 10, 4)])
    book = IncidentBook(store, clock)
    await book.declare(IncidentKind.FLOOD, NOW, NOW + timedelta(hours=1), "flood", "ops")
    await store.close()
    # As the previous version left it: whole records in their rows, no log at all.
    for n in range(4):
        at = NOW + timedelta(minutes=n)
        await execute(
            location,
            "INSERT INTO liability_records (seq, request_id, trace_id, bank_id, rpc, at, "
            "status_code, reason, clause, evidence, holder_token, prev_hash, row_hash, "
            "arrived_at) VALUES (?, ?, '', 'bank-a', 'Verify', ?, 'UNAVAILABLE', "
            "'PLATFORM_UNAVAILABLE', 'A16(1)(b)', '{}', NULL, 'x', 'y', ?)",
            n + 1,
            f"r-{n}",
            *([at.isoformat()] * 2 if isinstance(location, Path) else [at] * 2),
        )
    await execute(location, "DELETE FROM evidence_nodes")
    await execute(location, "DELETE FROM evidence_log")
    await execute(location, "UPDATE evidence_head SET frontier = ?", bytes(8))
    first, second = await open_store(location), await open_store(location)
    try:
        audit = await audit_log(first, None)
        assert audit.problems == ()
        assert audit.entries == 6  # an incident, the counts, four records
        assert (await second.log_head()).size == 6  # backfilled once, not twice
        records = await first.liability_records(NOW, NOW + timedelta(hours=1))
        assert [r.log_index for r in records] == [2, 3, 4, 5]
        assert [r.request_id for r in records] == [f"r-{n}" for n in range(4)]
    finally:
        await first.close()
        await second.close()
