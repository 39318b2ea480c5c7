"""A key job replacing a holder's key never strands a card (helper review of issue 17): a
card sealed under the replaced key (read by another replica before the job) is refused with
HolderKeyTaken, so that its Issue seals it again under the stored key; and a job that missed
a card stored after it read the holder's cards leaves that holder for its next batch."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from essc_gateway.keys.model import CardReseal, HolderKeyMove, KeyJob, WrappedHolderKey
from essc_gateway.store import IssueAttemptState
from essc_gateway.store.base import HolderKeyTaken
from essc_gateway.store.opening import GatewayStore
from tests.store.test_store_contract import NOW, card, claim, won

K1 = WrappedHolderKey("bank-a", "holder-1", "hk_1", 1, b"wrapped-1", NOW)
K2 = replace(K1, key_id="hk_2", data_version=2, wrapped=b"wrapped-2")
LEASE = timedelta(seconds=30)


def _reseal(essc_id: str) -> CardReseal:
    return CardReseal(essc_id, b"n2", b"i2", b"p2", b"c2", None)


async def _leased_job(store: GatewayStore) -> KeyJob:
    job = KeyJob("job-1", "bank-a", 2, True, 0, 1, NOW, None, None, None)
    await store.start_key_job(job)
    leased = await store.lease_key_job(job.job_id, "me", NOW, NOW + LEASE)
    assert leased is not None
    return leased


async def _first_card(store: GatewayStore) -> None:
    first = await won(store, "key-1")
    await store.complete_issue(
        "bank-a", "key-1", "ISSUED", "E1", card("E1", status="TERMINATED"), NOW, first.token, K1
    )


async def test_a_card_sealed_under_a_replaced_holder_key_is_refused(
    any_store: GatewayStore,
) -> None:
    store = any_store
    await _first_card(store)
    job = await _leased_job(store)
    assert await store.move_holder_keys(
        job.job_id, "me", [HolderKeyMove(K1, K2, (_reseal("E1"),))], NOW + LEASE
    ) == 1  # fmt: skip

    second = await won(store, "key-2")
    with pytest.raises(HolderKeyTaken):  # sealed under K1, which no copy holds any more
        await store.complete_issue(
            "bank-a", "key-2", "ISSUED", "E2", card("E2"), NOW, second.token, None, "hk_1"
        )
    assert await store.get_card("E2") is None
    attempt = await claim(store, "key-2")
    assert attempt is not None
    assert attempt.state is IssueAttemptState.PENDING  # nothing written: it seals again

    await store.complete_issue(
        "bank-a", "key-2", "ISSUED", "E2", card("E2"), NOW, second.token, None, "hk_2"
    )
    assert await store.get_card("E2") is not None


async def test_a_rekey_that_missed_a_card_leaves_the_holder_for_its_next_batch(
    any_store: GatewayStore,
) -> None:
    store = any_store
    await _first_card(store)
    job = await _leased_job(store)
    # The job read the holder's cards (E1); then a card came under K1.
    second = await won(store, "key-2")
    await store.complete_issue(
        "bank-a", "key-2", "ISSUED", "E2", card("E2"), NOW, second.token, None, "hk_1"
    )
    assert await store.move_holder_keys(
        job.job_id, "me", [HolderKeyMove(K1, K2, (_reseal("E1"),))], NOW + LEASE
    ) == 0  # fmt: skip
    [stored] = await store.holder_keys_to_move("bank-a", 2, 10)
    assert stored.key_id == "hk_1"
    # The next batch reads both cards: the move goes through.
    assert await store.move_holder_keys(
        job.job_id, "me", [HolderKeyMove(K1, K2, (_reseal("E1"), _reseal("E2")))], NOW + LEASE
    ) == 1  # fmt: skip
