"""The store's contract, on both adapters (SQLite and PostgreSQL, real databases): every
test here runs against each. What one adapter alone must do is in its own test module."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from essc_gateway.store import CardRecord, IssueAttempt, IssueAttemptState
from essc_gateway.store.base import (
    ClaimLost,
    IssueClaim,
    LiveCardConflict,
    StoreError,
    StoreUnavailable,
)
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import GatewayStore
from tests.polling import eventually
from tests.sql import refuse_inserts

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(any_store: GatewayStore) -> GatewayStore:
    return any_store


LEASE = timedelta(seconds=30)


async def claim(
    store: GatewayStore, key: str, now: datetime = NOW, fingerprint: str = "fp"
) -> IssueAttempt | None:
    """The attempt that holds `key`, or None when this claim won it."""
    return (await won(store, key, now, fingerprint)).existing


async def won(
    store: GatewayStore, key: str, now: datetime = NOW, fingerprint: str = "fp"
) -> IssueClaim:
    return await store.claim_issue("bank-a", key, fingerprint, now, now + LEASE, b"draft")


async def complete(store: GatewayStore, key: str, essc_id: str, token: str) -> None:
    await store.complete_issue("bank-a", key, "ISSUED", essc_id, card(essc_id), NOW, token)


def card(essc_id: str, holder: str = "holder-1", status: str = "ACTIVE") -> CardRecord:
    return CardRecord(
        essc_id=essc_id,
        bank_id="bank-a",
        holder_token=holder,
        name_sealed=b"n",
        id_number_sealed=b"i",
        phone_sealed=b"p",
        card_number_sealed=b"c",
        status=status,
        issued_at=NOW,
        consent_version="2024-03-20",
        consent_accepted_at=NOW,
        consent_channel="MOBILE_APP",
    )


async def test_a_key_is_claimed_once_and_completed_with_its_card(store: GatewayStore) -> None:
    first = await won(store, "key-1")
    assert first.existing is None
    pending = await claim(store, "key-1")
    assert pending is not None
    assert pending.state is IssueAttemptState.PENDING
    await complete(store, "key-1", "E1", first.token)
    done = await claim(store, "key-1")
    assert done is not None
    assert done.state is IssueAttemptState.COMPLETED
    assert done.essc_id == "E1"
    assert (await store.get_card("E1")) == card("E1")


async def test_concurrent_claims_of_one_key_have_one_winner(store: GatewayStore) -> None:
    results = await asyncio.gather(*(claim(store, "key-1") for _ in range(10)))
    assert sum(r is None for r in results) == 1


async def test_a3_the_database_refuses_a_second_live_card_for_a_holder(
    store: GatewayStore,
) -> None:
    await complete(store, "key-1", "E1", (await won(store, "key-1")).token)
    second = await won(store, "key-2")
    with pytest.raises(LiveCardConflict):
        await complete(store, "key-2", "E2", second.token)
    # Nothing half-written: the failed transaction left the attempt pending, no card E2.
    assert await store.get_card("E2") is None
    attempt = await claim(store, "key-2")
    assert attempt is not None
    assert attempt.state is IssueAttemptState.PENDING


async def test_a3_a_terminated_card_makes_room_for_a_new_one(store: GatewayStore) -> None:
    await complete(store, "key-1", "E1", (await won(store, "key-1")).token)
    await store.set_card_status("E1", "TERMINATED", NOW)
    assert await store.active_card_for_holder("holder-1") is None
    await complete(store, "key-2", "E2", (await won(store, "key-2")).token)
    active = await store.active_card_for_holder("holder-1")
    assert active is not None
    assert active.essc_id == "E2"


async def test_releasing_forgets_only_pending_attempts(store: GatewayStore) -> None:
    await store.release_issue("bank-a", "key-1", (await won(store, "key-1")).token)
    assert await claim(store, "key-1") is None


async def test_a_claim_past_its_lease_is_taken_over_and_the_old_claim_writes_nothing(
    store: GatewayStore,
) -> None:
    # Issue 10, defects 3-4: a request whose lease ran out (it died, or its deadline passed)
    # must neither block its key nor, writing late, undo the request that took it over.
    first = await won(store, "key-1")
    still_leased = await claim(store, "key-1", now=NOW + LEASE - timedelta(seconds=1))
    assert still_leased is not None
    assert still_leased.state is IssueAttemptState.PENDING
    later = NOW + LEASE + timedelta(seconds=1)
    assert await claim(store, "key-1", now=later, fingerprint="other") is not None
    second = await won(store, "key-1", now=later)
    assert second.existing is None
    assert second.was_in_doubt  # the first may have reached the platform: settle first
    await store.release_issue("bank-a", "key-1", first.token)
    await store.mark_issue_in_doubt("bank-a", "key-1", first.token)
    held = await store.get_issue_attempt("bank-a", "key-1")
    assert held is not None
    assert held.state is IssueAttemptState.PENDING
    with pytest.raises(ClaimLost):
        await complete(store, "key-1", "E1", first.token)
    await complete(store, "key-1", "E1", second.token)
    # The first learns of the card the second recorded: done with the same card, no error.
    await complete(store, "key-1", "E1", first.token)


async def test_unsettled_issues_are_in_doubt_or_past_lease_and_grace(store: GatewayStore) -> None:
    grace = timedelta(seconds=5)
    await store.mark_issue_in_doubt("bank-a", "doubt", (await won(store, "doubt")).token)
    await won(store, "leased")
    assert [a.idempotency_key for a in await store.unsettled_issues(NOW, 10, grace)] == ["doubt"]
    past = NOW + LEASE + grace + timedelta(seconds=1)
    keys = {a.idempotency_key for a in await store.unsettled_issues(past, 10, grace)}
    assert keys == {"doubt", "leased"}


LOCK = timedelta(minutes=30)
STALE = timedelta(minutes=1)


async def _fail(store: GatewayStore, now: datetime = NOW):  # type: ignore[no-untyped-def]
    admitted = await store.begin_factor_attempt("h", now, 3, STALE)
    assert admitted.admitted
    return await store.end_factor_attempt("h", False, now, 3, LOCK)


async def test_factor_failures_lock_at_the_limit_and_a_success_resets_the_count(
    store: GatewayStore,
) -> None:
    assert (await _fail(store)).consecutive_failures == 1
    assert await store.begin_factor_attempt("h", NOW, 3, STALE)
    await store.end_factor_attempt("h", True, NOW, 3, LOCK)
    assert (await _fail(store)).consecutive_failures == 1  # reset by the success
    await _fail(store)
    locked = await _fail(store)
    assert locked.locked_until == NOW + LOCK
    refused = await store.begin_factor_attempt("h", NOW + timedelta(minutes=29), 3, STALE)
    assert not refused.admitted
    assert (await store.begin_factor_attempt("h", NOW + LOCK, 3, STALE)).admitted


async def test_checks_in_flight_count_towards_the_lockout(store: GatewayStore) -> None:
    results = await asyncio.gather(
        *(store.begin_factor_attempt("h", NOW, 3, STALE) for _ in range(10))
    )
    assert sum(r.admitted for r in results) == 3
    # A reservation whose request died lapses.
    later = await store.begin_factor_attempt("h", NOW + STALE, 3, STALE)
    assert later.admitted


async def test_a_success_does_not_lift_an_active_lock(store: GatewayStore) -> None:
    for _ in range(3):
        await _fail(store)
    # A reservation from before the lock (lapsed, its request slow) finishes with success.
    await store.end_factor_attempt("h", True, NOW, 3, LOCK)
    assert not (await store.begin_factor_attempt("h", NOW, 3, STALE)).admitted


async def test_a_cancelled_write_leaves_the_store_usable(store: GatewayStore) -> None:
    # A client that goes away mid-write must not leave a transaction open, and the write
    # it had started is done all the same (the port's contract).
    delays = (0.0, 0.0005, 0.001, 0.002, 0.005)
    for n, delay in enumerate(delays):
        task = asyncio.ensure_future(claim(store, f"k-{n}"))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await claim(store, "after") is None

    async def all_claimed() -> bool:
        found = [await store.get_issue_attempt("bank-a", f"k-{n}") for n in range(len(delays))]
        return all(attempt is not None for attempt in found)

    await eventually(all_claimed)


async def test_a_broken_rule_of_the_database_is_a_store_error_never_a_driver_error(
    store: GatewayStore, location: StoreLocation
) -> None:
    await refuse_inserts(location, "cards")
    claimed = await won(store, "key-1")
    with pytest.raises(StoreError) as raised:
        await complete(store, "key-1", "E1", claimed.token)
    assert type(raised.value) is StoreError
    assert not isinstance(raised.value, StoreUnavailable)
