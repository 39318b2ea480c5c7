"""Circuit breaker states and the shared retry budget, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

from essc_gateway.testing import FakeClock
from essc_gateway.upstream.breaker import BreakerSettings, BreakerState, CircuitBreaker
from essc_gateway.upstream.budget import BudgetSettings, RetryBudget

SETTINGS = BreakerSettings(
    window=10, min_calls=4, failure_rate=0.5, open_for=timedelta(seconds=5), probes=2
)


def breaker(clock: FakeClock, seen: list[BreakerState] | None = None) -> CircuitBreaker:
    events = seen if seen is not None else []
    return CircuitBreaker("IssueCard", SETTINGS, clock, lambda _op, state: events.append(state))


def test_failures_open_the_breaker_and_probes_close_it() -> None:
    clock = FakeClock()
    seen: list[BreakerState] = []
    b = breaker(clock, seen)
    for success in (True, False, False, True):
        assert b.try_acquire()
        b.record(success)
    assert b.state is BreakerState.OPEN  # 2 of 4 failed
    assert not b.try_acquire()
    assert b.retry_after() == timedelta(seconds=5)
    clock.advance(timedelta(seconds=5))
    assert b.state is BreakerState.HALF_OPEN
    assert b.try_acquire()
    assert b.try_acquire()
    assert not b.try_acquire()  # only two probes at once
    b.record(True)
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_opens_it_again() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        b.try_acquire()
        b.record(False)
    clock.advance(timedelta(seconds=5))
    assert b.try_acquire()
    b.record(False)
    assert b.state is BreakerState.OPEN
    assert not b.try_acquire()


def test_too_few_calls_do_not_open_it() -> None:
    b = breaker(FakeClock())
    for _ in range(3):
        b.try_acquire()
        b.record(False)
    assert b.state is BreakerState.CLOSED


def test_forced_open_until_a_time_then_probes() -> None:
    clock = FakeClock()
    b = breaker(clock)
    b.force_open(clock.now() + timedelta(minutes=10))
    clock.advance(timedelta(minutes=9))
    assert not b.try_acquire()
    assert b.retry_after() == timedelta(minutes=1)
    clock.advance(timedelta(minutes=1))
    assert b.state is BreakerState.HALF_OPEN
    assert b.try_acquire()


def test_release_ends_a_forced_opening() -> None:
    clock = FakeClock()
    b = breaker(clock)
    b.force_open(clock.now() + timedelta(hours=1))
    b.release()
    assert b.state is BreakerState.HALF_OPEN


def test_retries_are_limited_to_a_share_of_requests_plus_a_floor() -> None:
    clock = FakeClock()
    budget = RetryBudget(
        BudgetSettings(ratio=0.2, min_retries_per_second=1.0, window_seconds=10), clock
    )
    for _ in range(100):
        budget.record_request()
    granted = sum(budget.try_retry() for _ in range(100))
    assert granted == 20 + 10  # 20 % of 100, plus 1/s over a 10 s window


def test_the_floor_is_the_clusters_split_between_live_replicas() -> None:
    # Issue 11: N replicas in a quiet outage retry no more than one would.
    settings = BudgetSettings(ratio=0.2, min_retries_per_second=1.0, window_seconds=10)
    replicas = [RetryBudget(settings, FakeClock()) for _ in range(5)]
    for budget in replicas:
        budget.share_with(len(replicas))
    granted = sum(budget.try_retry() for budget in replicas for _ in range(100))
    assert granted == 10  # 1/s over 10 s for the cluster, not for each replica


def test_the_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(
        BudgetSettings(ratio=0.5, min_retries_per_second=0, window_seconds=10), clock
    )
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_retry() for _ in range(10)) == 5
    clock.advance(timedelta(seconds=11))
    assert not budget.try_retry()  # old requests no longer earn retries
    budget.record_request()
    budget.record_request()
    assert budget.try_retry()
