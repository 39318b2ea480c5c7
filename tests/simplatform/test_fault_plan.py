"""The fault plan on its own: matching, timeline, decision order, reproducible draws."""

from __future__ import annotations

import random
import statistics
from datetime import timedelta

import grpc
import pytest

from essc_gateway.simplatform import (
    AnswerLost,
    ConnectionFailure,
    ConnectionMode,
    ErrorRate,
    Errors,
    FaultError,
    FaultPlan,
    Hang,
    Latency,
    LatencyDistribution,
    Maintenance,
    Outage,
    RejectionKind,
    Rule,
    Scenario,
)
from essc_gateway.simplatform.faults import STATUS_CODE_NAMES
from essc_gateway.testing import FakeClock
from tests.simplatform.helpers import CHECK_REAL_NAME, GET_ACCOUNTS, ISSUE_CARD

SECOND = timedelta(seconds=1)
CARDS = "/essc.platform.v1.CardService/*"


def errors(rate: float, code: str = "UNAVAILABLE") -> Errors:
    return Errors((ErrorRate(code, rate),))


def plan_with(*rules: Rule, seed: int = 3) -> tuple[FaultPlan, FakeClock]:
    clock = FakeClock()
    plan = FaultPlan(clock)
    plan.set_scenario(Scenario(rules=rules, seed=seed))
    return plan, clock


def test_status_code_names_are_grpcs_error_codes() -> None:
    assert {c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK} == STATUS_CODE_NAMES


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        ("*", {CHECK_REAL_NAME, ISSUE_CARD, GET_ACCOUNTS}),
        (CARDS, {ISSUE_CARD}),
        (ISSUE_CARD, {ISSUE_CARD}),
    ],
)
def test_method_patterns(pattern: str, matched: set[str]) -> None:
    rule = Rule(Outage(), method=pattern)
    assert {m for m in (CHECK_REAL_NAME, ISSUE_CARD, GET_ACCOUNTS) if rule.matches(m)} == matched


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rule(Outage(), method="IssueCard"),
        lambda: Rule(Outage(), method="/essc.platform.v1.*/IssueCard"),
        lambda: Rule(Outage(), start_after=-SECOND),
        lambda: Rule(ConnectionFailure(ConnectionMode.REFUSE), method=ISSUE_CARD),
        lambda: Errors(()),
        lambda: errors(0.3, code="OK"),
        lambda: errors(1.5),
        lambda: Errors((ErrorRate("UNAVAILABLE", 0.7), ErrorRate("INTERNAL", 0.4))),
        lambda: Hang(rate=-0.1),
        lambda: AnswerLost(rate=float("nan")),
        lambda: Latency(base=-SECOND),
        lambda: Latency(sigma=-1.0, distribution=LatencyDistribution.LOGNORMAL),
    ],
)
def test_faults_that_cannot_apply_are_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(FaultError):
        build()


def test_a_rule_is_inactive_before_active_during_and_inactive_after() -> None:
    rule = Rule(Outage(), start_after=10 * SECOND, duration=30 * SECOND)
    plan, clock = plan_with(rule)
    seen = []
    for step in (0, 9, 1, 29, 1):
        clock.advance(step * SECOND)
        seen.append(plan.plan_call(GET_ACCOUNTS).rejection is not None)
    assert seen == [False, False, True, True, False]


def test_without_duration_a_rule_lasts_until_cleared() -> None:
    plan, clock = plan_with(Rule(Outage(), duration=timedelta(0)))
    clock.advance(timedelta(days=30))
    assert plan.plan_call(GET_ACCOUNTS).rejection is not None
    assert plan.active_rules()[0].remaining is None
    plan.clear()
    assert plan.plan_call(GET_ACCOUNTS).rejection is None


def test_remaining_time_follows_the_clock() -> None:
    plan, clock = plan_with(Rule(Maintenance(), start_after=5 * SECOND, duration=60 * SECOND))
    clock.advance(20 * SECOND)
    [active] = plan.active_rules()
    assert active.remaining == 45 * SECOND
    rejection = plan.plan_call(ISSUE_CARD).rejection
    assert rejection is not None
    assert rejection.kind is RejectionKind.MAINTENANCE
    assert rejection.retry_after == 45 * SECOND


def test_decision_order_maintenance_outage_error_hang_latency() -> None:
    everything = (
        Rule(Latency(base=SECOND)),
        Rule(Hang()),
        Rule(errors(1.0, "INTERNAL")),
        Rule(Outage()),
        Rule(Maintenance()),
        Rule(AnswerLost()),
    )
    expected = [
        RejectionKind.MAINTENANCE,
        RejectionKind.OUTAGE,
        RejectionKind.INJECTED_ERROR,
        "hang",
        "latency+lost",
    ]
    seen = []
    for dropped in range(len(expected)):
        # Drop the winners one by one, from the highest rank down.
        rules = tuple(r for r in everything if _rank(r) >= dropped)
        plan, _ = plan_with(*rules)
        call = plan.plan_call(ISSUE_CARD)
        if call.rejection is not None:
            seen.append(call.rejection.kind)
        elif call.hang:
            seen.append("hang")
        else:
            assert call.delay == 1.0
            seen.append("latency+lost" if call.lose_answer else "latency")
    assert seen == expected


def _rank(rule: Rule) -> int:
    order = (Maintenance, Outage, Errors, Hang)
    kind = type(rule.fault)
    return order.index(kind) if kind in order else len(order)


def test_the_most_specific_rule_of_a_kind_wins_then_the_first_listed() -> None:
    plan, _ = plan_with(
        Rule(Latency(base=1 * SECOND)),
        Rule(Latency(base=2 * SECOND), method=CARDS),
        Rule(Latency(base=3 * SECOND), method=ISSUE_CARD),
        Rule(Latency(base=4 * SECOND), method=ISSUE_CARD),
    )
    assert plan.plan_call(ISSUE_CARD).delay == 3.0
    assert plan.plan_call("/essc.platform.v1.CardService/GetCard").delay == 2.0
    assert plan.plan_call(GET_ACCOUNTS).delay == 1.0


def test_a_scenario_latency_wins_over_a_standing_one() -> None:
    plan, _ = plan_with(Rule(Latency(base=2 * SECOND), method=ISSUE_CARD))
    plan.set_latency("*", Latency(base=SECOND))
    assert plan.plan_call(ISSUE_CARD).delay == 2.0
    assert plan.plan_call(GET_ACCOUNTS).delay == 1.0
    plan.set_latency("*", Latency())  # zero clears it
    assert plan.plan_call(GET_ACCOUNTS).delay == 0.0


def test_error_rates_pick_codes_in_proportion() -> None:
    mixed = Errors((ErrorRate("UNAVAILABLE", 0.3), ErrorRate("INTERNAL", 0.05)))
    plan, _ = plan_with(Rule(mixed))
    codes = [plan.plan_call(GET_ACCOUNTS).rejection for _ in range(2000)]
    unavailable = sum(1 for c in codes if c is not None and c.code == "UNAVAILABLE")
    internal = sum(1 for c in codes if c is not None and c.code == "INTERNAL")
    # Binomial: 600 +- 20.5 and 100 +- 9.7 (1 sd); the bands are 5 sd wide each way.
    assert 500 <= unavailable <= 700
    assert 50 <= internal <= 150


def test_decisions_replay_per_method_whatever_the_interleaving() -> None:
    rules = (Rule(errors(0.3)), Rule(Hang(rate=0.2)), Rule(Latency(base=SECOND, jitter=SECOND)))

    def run(order: list[str]) -> dict[str, list[tuple[object, ...]]]:
        plan, _ = plan_with(*rules, seed=42)
        seen: dict[str, list[tuple[object, ...]]] = {}
        for method in order:
            call = plan.plan_call(method)
            seen.setdefault(method, []).append((call.rejection, call.hang, call.delay))
        return seen

    methods = [ISSUE_CARD] * 50 + [GET_ACCOUNTS] * 50
    shuffled = list(methods)
    random.Random(9).shuffle(shuffled)
    assert run(methods) == run(shuffled)
    plan, _ = plan_with(*rules, seed=43)
    other_seed = [plan.plan_call(ISSUE_CARD).rejection is not None for _ in range(50)]
    assert other_seed != [r is not None for r, _, _ in run(methods)[ISSUE_CARD]]


def test_setting_a_scenario_restarts_the_timeline_and_the_call_indices() -> None:
    plan, clock = plan_with(Rule(errors(0.5)), seed=8)
    first = [plan.plan_call(ISSUE_CARD).rejection is not None for _ in range(30)]
    clock.advance(100 * SECOND)
    plan.set_scenario(Scenario(rules=(Rule(errors(0.5)),), seed=8))
    assert plan.elapsed() == 0.0
    assert [plan.plan_call(ISSUE_CARD).rejection is not None for _ in range(30)] == first


@pytest.mark.parametrize(
    ("latency", "mean", "low", "high"),
    [
        (Latency(base=0.2 * SECOND, distribution=LatencyDistribution.FIXED), 0.2, 0.2, 0.2),
        (Latency(base=0.1 * SECOND, jitter=0.1 * SECOND), 0.15, 0.1, 0.2),
        (
            Latency(
                base=0.05 * SECOND, stddev=0.1 * SECOND, distribution=LatencyDistribution.NORMAL
            ),
            None,
            0.0,
            None,
        ),
        (
            Latency(base=0.1 * SECOND, sigma=0.5, distribution=LatencyDistribution.LOGNORMAL),
            None,
            0.0,
            None,
        ),
    ],
)
def test_latency_distributions(
    latency: Latency, mean: float | None, low: float, high: float | None
) -> None:
    rng = random.Random(1)
    draws = [latency.draw(rng) for _ in range(4000)]
    assert min(draws) >= low
    if high is not None:
        assert max(draws) <= high
    if mean is not None:
        assert statistics.fmean(draws) == pytest.approx(mean, abs=0.01)
    if latency.distribution is LatencyDistribution.NORMAL:
        assert 0.0 in draws  # truncated at zero, not redrawn
    if latency.distribution is LatencyDistribution.LOGNORMAL:
        assert statistics.median(draws) == pytest.approx(0.1, rel=0.1)
        assert statistics.fmean(draws) > statistics.median(draws)  # long right tail


def test_connection_fault_refuse_wins_over_reset() -> None:
    plan, clock = plan_with(
        Rule(ConnectionFailure(ConnectionMode.RESET)),
        Rule(ConnectionFailure(ConnectionMode.REFUSE), start_after=SECOND, duration=SECOND),
    )
    modes = []
    for _ in range(3):
        fault = plan.connection_fault()
        modes.append(None if fault is None else fault.mode)
        clock.advance(SECOND)
    assert modes == [ConnectionMode.RESET, ConnectionMode.REFUSE, ConnectionMode.RESET]
    assert plan.plan_call(ISSUE_CARD).rejection is None  # not a gRPC-level fault


def test_listeners_hear_of_every_change() -> None:
    plan = FaultPlan(FakeClock())
    heard: list[str] = []
    plan.on_change(lambda: heard.append("changed"))
    plan.set_scenario(Scenario())
    plan.set_latency("*", Latency(base=SECOND))
    plan.clear()
    assert heard == ["changed"] * 3
