"""Invariants that must hold when several replicas share one store: each test races eight
stores opened on the same database (eight connections, as eight replicas would), on both
adapters (issue 11)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from essc_gateway.domain.maintenance import MaintenanceWindow, WindowKind
from essc_gateway.evidence.audit import audit_log
from essc_gateway.liability.model import LiabilityRecord
from essc_gateway.store import IssueAttemptState
from essc_gateway.store.base import ClaimLost, LiveCardConflict
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import GatewayStore, open_store
from tests.polling import eventually
from tests.store.test_ledger_tables import record
from tests.store.test_store_contract import card

REPLICAS = 8
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def stores(location: StoreLocation) -> AsyncIterator[list[GatewayStore]]:
    # Opened at the same moment: the migration runs once, under the lock.
    opened = await asyncio.gather(*(open_store(location) for _ in range(REPLICAS)))
    yield list(opened)
    await asyncio.gather(*(store.close() for store in opened))


async def test_one_idempotency_winner_per_key(stores: list[GatewayStore]) -> None:
    for key in ("k-1", "k-2", "k-3"):
        claims = await asyncio.gather(
            *(s.claim_issue("bank-a", key, "fp", NOW, NOW + LEASE, b"d") for s in stores)
        )
        assert sum(c.existing is None for c in claims) == 1


async def test_no_lockout_is_exceeded(stores: list[GatewayStore]) -> None:
    stale = timedelta(minutes=1)
    reserved = await asyncio.gather(
        *(s.begin_factor_attempt("holder", NOW, 5, stale) for s in stores for _ in range(3))
    )
    assert sum(r.admitted for r in reserved) == 5
    # Every admitted check fails: the fifth locks, and nobody gets a sixth try.
    await asyncio.gather(
        *(
            stores[n % REPLICAS].end_factor_attempt("holder", False, NOW, 5, timedelta(hours=1))
            for n in range(5)
        )
    )
    after = await asyncio.gather(*(s.begin_factor_attempt("holder", NOW, 5, stale) for s in stores))
    assert not any(r.admitted for r in after)


async def test_no_sms_limit_is_exceeded(stores: list[GatewayStore]) -> None:
    waits = await asyncio.gather(
        *(
            s.record_sms_send("holder", "LOGIN", NOW, timedelta(seconds=60), 10)
            for s in stores
            for _ in range(2)
        )
    )
    assert sum(w is None for w in waits) == 1  # one code per interval, whoever sends it


async def test_window_versions_never_collide(stores: list[GatewayStore]) -> None:
    window = MaintenanceWindow(
        window_id="mw-race",
        kind=WindowKind.BANK,
        starts_at=NOW + timedelta(hours=1),
        ends_at=NOW + timedelta(hours=2),
        rpcs=frozenset({"Issue"}),
        reason="upgrade",
        announced_at=NOW,
    )
    await stores[0].save_window(window, NOW)

    def later_by(minutes: int):  # type: ignore[no-untyped-def]
        def change(current: MaintenanceWindow) -> MaintenanceWindow:
            return replace(current, ends_at=current.ends_at + timedelta(minutes=minutes))

        return change

    updated = await asyncio.gather(
        *(s.update_window("mw-race", later_by(n + 1), NOW) for n, s in enumerate(stores))
    )
    assert sorted(w.version for w in updated if w is not None) == list(range(2, REPLICAS + 2))
    versions = [w for w in await stores[0].window_versions() if w.window_id == "mw-race"]
    assert [w.version for w in versions] == list(range(1, REPLICAS + 2))
    final = versions[-1]
    assert final.version == REPLICAS + 1
    # Every change applied to the one before it: none was lost.
    assert final.ends_at == window.ends_at + timedelta(minutes=sum(range(1, REPLICAS + 1)))


async def test_the_evidence_log_has_no_fork_and_no_gap(
    stores: list[GatewayStore],
) -> None:
    appended = await asyncio.gather(
        *(stores[n % REPLICAS].append_liability(record(n)) for n in range(160)),
        *(
            stores[n % REPLICAS].add_request_counts([("bank-a", "2026-11-02", 1, 1)])
            for n in range(40)
        ),
    )
    records = [r for r in appended if isinstance(r, LiabilityRecord)]
    assert sorted(r.seq for r in records) == list(range(1, 161))
    audit = await audit_log(stores[0], None)
    assert audit.problems == ()
    assert audit.entries == 200  # 160 records and 40 counts, each once
    assert len({(await s.log_head()).root for s in stores}) == 1


async def test_every_queued_forward_is_claimed_once(stores: list[GatewayStore]) -> None:
    keys = [f"fwd-{n}" for n in range(40)]
    for key in keys:
        claim = await stores[0].claim_issue("bank-a", key, "fp", NOW, NOW + LEASE, b"d")
        await stores[0].accept_for_forwarding("bank-a", key, b"payload", NOW, NOW, claim.token)
    batches = await asyncio.gather(*(s.claim_due_forwards(NOW, 10, NOW + LEASE) for s in stores))
    claimed = [item.idempotency_key for batch in batches for item in batch]
    assert sorted(claimed) == sorted(keys)  # all of them, none twice
    # Claimed entries stay with their claimant until the lease ends, then are due again.
    assert await stores[1].claim_due_forwards(NOW + LEASE / 2, 50, NOW + LEASE) == []
    again = await stores[1].claim_due_forwards(NOW + LEASE, 50, NOW + 2 * LEASE)
    assert len(again) == len(keys)


async def test_a_write_completes_when_its_caller_is_cancelled(store: GatewayStore) -> None:
    # The port's contract: whether to write was decided before the call.
    for n in range(20):
        claim = await store.claim_issue("bank-a", f"c-{n}", "fp", NOW, NOW + LEASE, b"d")
        write = asyncio.ensure_future(
            store.complete_issue(
                "bank-a", f"c-{n}", "ISSUED", f"E{n}", card(f"E{n}", f"h-{n}"), NOW, claim.token
            )
        )
        await asyncio.sleep(0)  # the write has started
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write

    async def all_written() -> bool:
        cards = [await store.get_card(f"E{n}") for n in range(20)]
        return all(card is not None for card in cards)

    await eventually(all_written)


@pytest.fixture
def store(any_store: GatewayStore) -> GatewayStore:
    return any_store


async def test_claims_racing_releases_never_fail(stores: list[GatewayStore]) -> None:
    # A row the claim's INSERT met may be released before its SELECT (review of issue 11).
    async def churn(store: GatewayStore, rounds: int) -> None:
        for n in range(rounds):
            now = NOW + timedelta(milliseconds=n)
            claim = await store.claim_issue("bank-a", "hot", "fp", now, now + LEASE, b"d")
            if claim.existing is None:
                await store.release_issue("bank-a", "hot", claim.token)

    await asyncio.gather(*(churn(store, 40) for store in stores))


async def test_a_stale_forward_claimant_changes_nothing(stores: list[GatewayStore]) -> None:
    first, second = stores[0], stores[1]
    claim = await first.claim_issue("bank-a", "fwd", "fp", NOW, NOW + LEASE, b"d")
    await first.accept_for_forwarding("bank-a", "fwd", b"payload", NOW, NOW, claim.token)
    [stale] = await first.claim_due_forwards(NOW, 1, NOW + LEASE)
    later = NOW + LEASE  # the first claimant's lease ran out: another replica takes it
    [current] = await second.claim_due_forwards(later, 1, later + LEASE)
    assert current.claim != stale.claim
    # The stale claimant, writing late, neither puts it back nor fails it nor completes it.
    await first.postpone_forward("bank-a", "fwd", later, stale.claim)
    await first.fail_forward("bank-a", "fwd", "PLATFORM_REJECTED", later, stale.claim)
    with pytest.raises(ClaimLost):
        await first.complete_issue(
            "bank-a", "fwd", "ISSUED", "E-fwd", card("E-fwd", "h-fwd"), later, stale.claim
        )
    attempt = await first.get_issue_attempt("bank-a", "fwd")
    assert attempt is not None
    assert attempt.state is IssueAttemptState.FORWARD_PENDING
    assert await first.claim_due_forwards(later, 1, later + LEASE) == []  # still the second's
    await second.complete_issue(
        "bank-a", "fwd", "ISSUED", "E-fwd", card("E-fwd", "h-fwd"), later, current.claim
    )
    done = await second.get_issue_attempt("bank-a", "fwd")
    assert done is not None
    assert done.state is IssueAttemptState.COMPLETED


async def test_a_conflicting_card_fails_only_its_own_completion(store: GatewayStore) -> None:
    # Completions are committed in groups on PostgreSQL: one holder's second live card must
    # fail its own request alone, the others of its group complete.
    claims = {}
    for n in range(12):
        claim = await store.claim_issue("bank-a", f"g-{n}", "fp", NOW, NOW + LEASE, b"d")
        claims[n] = claim.token
    holders = [f"h-{n}" for n in range(11)] + ["h-0"]  # the last is h-0's second card
    outcomes = await asyncio.gather(
        *(
            store.complete_issue(
                "bank-a", f"g-{n}", "ISSUED", f"G{n}", card(f"G{n}", holders[n]), NOW, claims[n]
            )
            for n in range(12)
        ),
        return_exceptions=True,
    )
    failed = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert len(failed) == 1
    assert isinstance(outcomes[failed[0]], LiveCardConflict)
    assert failed[0] in (0, 11)  # one of h-0's two cards, whichever came second
    for n in set(range(12)) - set(failed):
        attempt = await store.get_issue_attempt("bank-a", f"g-{n}")
        assert attempt is not None
        assert attempt.state is IssueAttemptState.COMPLETED
