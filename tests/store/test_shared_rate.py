"""A bank's rate limit holds for the cluster, whatever the number of replicas and however the
load is spread (issue 11): replicas draw from one bucket in the store, on both adapters. The
clock is driven by the test: the same run every time on any machine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from essc_gateway.errors import ResourceExhausted
from essc_gateway.store.cluster import RateGrant
from essc_gateway.store.opening import GatewayStore
from essc_gateway.testing import FakeClock
from essc_gateway.transport.admission import RateLimit
from essc_gateway.transport.shared_rate import SharedRateLimit

LIMIT = RateLimit(per_second=100.0, burst=20.0)
SECONDS = 10
STEP = timedelta(milliseconds=10)


async def _admitted(store: GatewayStore, demand_per_step: list[int]) -> int:
    """Requests admitted in SECONDS when replica i receives demand_per_step[i] per step."""
    clock = FakeClock()
    replicas = [SharedRateLimit("bank-a", LIMIT, store, clock) for _ in demand_per_step]
    admitted = 0
    for _ in range(int(SECONDS / STEP.total_seconds())):
        for replica, demand in zip(replicas, demand_per_step, strict=True):
            for _ in range(demand):
                try:
                    await replica.admit()
                except ResourceExhausted:
                    continue
                admitted += 1
        clock.advance(STEP)
    return admitted


@pytest.mark.parametrize(
    "demand_per_step",
    [
        [3],  # one replica, three times the rate
        [2, 2],  # two, four times the rate between them
        [1, 1, 1, 1],  # four, spread evenly
        [4, 0, 0],  # three replicas, all the load on one
        [3, 1],  # two, uneven
    ],
    ids=["1-replica", "2-even", "4-even", "3-one-busy", "2-uneven"],
)
async def test_the_cluster_admits_the_configured_rate_within_ten_percent(
    any_store: GatewayStore, demand_per_step: list[int]
) -> None:
    expected = LIMIT.burst + LIMIT.per_second * SECONDS
    admitted = await _admitted(any_store, demand_per_step)
    assert abs(admitted - expected) <= 0.1 * expected, (admitted, expected)


async def test_a_refused_replica_names_a_wait_and_asks_the_store_rarely(
    any_store: GatewayStore,
) -> None:
    clock = FakeClock()
    asked = 0
    take = any_store.take_rate_tokens

    async def counted(*args: Any) -> RateGrant:
        nonlocal asked
        asked += 1
        return await take(*args)

    any_store.take_rate_tokens = counted  # type: ignore[method-assign]  # counts, still real
    limiter = SharedRateLimit("bank-a", RateLimit(per_second=10.0, burst=1.0), any_store, clock)
    await limiter.admit()
    with pytest.raises(ResourceExhausted) as refused:
        await limiter.admit()
    assert refused.value.retry_after is not None
    assert timedelta(0) < refused.value.retry_after <= timedelta(seconds=0.2)
    asked_before = asked
    for _ in range(100):  # refused locally, without a store round trip each
        with pytest.raises(ResourceExhausted):
            await limiter.admit()
    assert asked == asked_before
    clock.advance(timedelta(seconds=0.2))
    await limiter.admit()  # a token again once the wait is over
