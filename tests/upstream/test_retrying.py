"""The retry policy against scripted attempt outcomes: fake clock, seeded jitter."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from essc_gateway.deadlines import request_deadline
from essc_gateway.errors import GatewayError, PlatformTimeout, PlatformUnavailable
from essc_gateway.metrics import GatewayMetrics
from essc_gateway.testing import FakeClock
from essc_gateway.upstream.breaker import Breakers, BreakerSettings
from essc_gateway.upstream.budget import BudgetSettings, RetryBudget
from essc_gateway.upstream.grpc_platform import map_rpc_error
from essc_gateway.upstream.outcomes import Outcome, classify
from essc_gateway.upstream.retrying import OperationKind, ResilientCaller, RetrySettings


def answered(
    code: grpc.StatusCode, reason: str = "OUTAGE", retry_after: float | None = None
) -> grpc.aio.AioRpcError:
    """An error the platform itself sent, with google.rpc details."""
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="essc-platform.v1"))
    details.append(info)
    if retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(retry_after * 1000))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), details=details)
    return grpc.aio.AioRpcError(
        code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        details="platform says no",
    )


def refused() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="failed to connect to all addresses; last error: Connection refused",
    )


def timed_out() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Deadline Exceeded",
    )


class Harness:
    def __init__(self, **settings: object) -> None:
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.before_sleep: Callable[[], Awaitable[None]] | None = None
        """Runs at each back-off, before the (fake) time passes."""
        self.timeouts: list[float] = []
        self.reader = InMemoryMetricReader()
        self.metrics = GatewayMetrics(MeterProvider(metric_readers=[self.reader]))
        self.breakers = Breakers(
            BreakerSettings(window=50, min_calls=50), self.clock, self.metrics.breaker_changed
        )
        self.caller = ResilientCaller(
            RetrySettings(**settings),  # type: ignore[arg-type]
            RetryBudget(BudgetSettings(), self.clock),
            self.breakers,
            self.metrics,
            self.clock,
            random.Random(3),
            map_rpc_error,
            sleep=self._sleep,
        )

    async def _sleep(self, seconds: float) -> None:
        if self.before_sleep is not None:
            await self.before_sleep()
        self.sleeps.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))

    def script(self, *outcomes: grpc.aio.AioRpcError | str):  # type: ignore[no-untyped-def]
        remaining: Iterator[grpc.aio.AioRpcError | str] = iter(outcomes)

        async def attempt(seconds: float) -> str:
            self.timeouts.append(seconds)
            outcome = next(remaining)
            if isinstance(outcome, grpc.aio.AioRpcError):
                raise outcome
            return outcome

        return attempt


async def test_transient_answers_are_retried_with_full_jitter_backoff() -> None:
    h = Harness(backoff_base=0.1, backoff_cap=1.0)
    attempt = h.script(
        answered(grpc.StatusCode.UNAVAILABLE), answered(grpc.StatusCode.UNAVAILABLE), "ok"
    )
    assert await h.caller.call("GetCard", OperationKind.READ, attempt) == "ok"
    assert len(h.sleeps) == 2
    assert 0 <= h.sleeps[0] <= 0.1
    assert 0 <= h.sleeps[1] <= 0.2


async def test_pushback_from_the_platform_is_honoured() -> None:
    h = Harness()
    attempt = h.script(answered(grpc.StatusCode.UNAVAILABLE, retry_after=0.4), "ok")
    await h.caller.call("GetCard", OperationKind.READ, attempt)
    assert h.sleeps[0] >= 0.4


async def test_a_long_pushback_is_answered_at_once_not_held_until_the_deadline() -> None:
    h = Harness(max_pushback_wait=1.0, default_deadline=30.0)
    attempt = h.script(answered(grpc.StatusCode.UNAVAILABLE, retry_after=8.0), "ok")
    with pytest.raises(PlatformUnavailable) as raised:
        await h.caller.call("GetCard", OperationKind.READ, attempt)
    assert h.sleeps == []  # 8 s would be in time for the deadline, and useless to the caller
    assert raised.value.retry_after == timedelta(seconds=8)  # the bank learns when to retry


async def test_each_attempt_is_kept_as_evidence() -> None:
    h = Harness(backoff_base=0.1)
    attempt = h.script(
        answered(grpc.StatusCode.UNAVAILABLE, retry_after=0.3), timed_out(), refused(), "x"
    )
    h.caller = ResilientCaller(
        RetrySettings(max_attempts=3, backoff_base=0.1),
        RetryBudget(BudgetSettings(), h.clock),
        h.breakers,
        h.metrics,
        h.clock,
        random.Random(3),
        map_rpc_error,
        sleep=h._sleep,
    )
    with pytest.raises(PlatformUnavailable) as raised:
        await h.caller.call("GetCard", OperationKind.READ, attempt)
    attempts = raised.value.attempts
    assert [(a.operation, a.code, a.outcome) for a in attempts] == [
        ("GetCard", "UNAVAILABLE", "REJECTED"),
        ("GetCard", "DEADLINE_EXCEEDED", "IN_DOUBT"),
        ("GetCard", "UNAVAILABLE", "NOT_SENT"),
    ]
    assert attempts[0].platform_reason == "OUTAGE"
    assert attempts[0].retry_after_ms == 300
    assert attempts[1].sent_at - attempts[0].sent_at >= timedelta(seconds=0.3)


async def test_no_sleep_or_attempt_past_the_callers_deadline() -> None:
    h = Harness(attempt_timeout=1.0, deadline_margin=0.02)
    token = request_deadline.set(h.clock.monotonic() + 0.5)
    try:
        attempt = h.script(answered(grpc.StatusCode.UNAVAILABLE, retry_after=2.0), "ok")
        with pytest.raises(PlatformUnavailable):
            await h.caller.call("GetCard", OperationKind.READ, attempt)
    finally:
        request_deadline.reset(token)
    assert h.sleeps == []  # 2 s of pushback would pass the 0.5 s deadline
    assert h.timeouts == [pytest.approx(0.48)]  # the attempt itself stayed inside it


async def test_maintenance_answers_are_not_retried() -> None:
    h = Harness()
    attempt = h.script(answered(grpc.StatusCode.UNAVAILABLE, reason="MAINTENANCE", retry_after=600))
    with pytest.raises(PlatformUnavailable) as raised:
        await h.caller.call("GetCard", OperationKind.READ, attempt)
    assert raised.value.reason.value == "PLATFORM_MAINTENANCE"
    assert raised.value.retry_after == timedelta(seconds=600)


async def test_unsafe_operations_are_not_retried_when_in_doubt() -> None:
    h = Harness()
    with pytest.raises(PlatformTimeout) as raised:
        await h.caller.call("SendSmsCode", OperationKind.UNSAFE, h.script(timed_out(), "ok"))
    assert raised.value.platform.outcome is Outcome.IN_DOUBT
    assert len(h.timeouts) == 1
    # ...but what never reached the platform is retried.
    h2 = Harness()
    assert (
        await h2.caller.call("SendSmsCode", OperationKind.UNSAFE, h2.script(refused(), "sent"))
        == "sent"
    )


async def test_an_in_doubt_write_asks_for_its_outcome_before_resending() -> None:
    h = Harness()
    sent: list[str] = []

    async def recover(seconds: float) -> str | None:
        sent.append("lookup")
        return "issued-earlier"

    attempt = h.script(timed_out(), "issued-again")
    result = await h.caller.call("IssueCard", OperationKind.KEYED_WRITE, attempt, recover)
    assert result == "issued-earlier"
    assert sent == ["lookup"]
    assert len(h.timeouts) == 1  # never re-sent


async def test_an_in_doubt_write_the_platform_never_saw_is_resent() -> None:
    h = Harness()

    async def recover(seconds: float) -> str | None:
        return None

    attempt = h.script(timed_out(), "issued")
    assert await h.caller.call("IssueCard", OperationKind.KEYED_WRITE, attempt, recover) == "issued"
    assert len(h.timeouts) == 2


async def test_the_three_outcomes_are_kept_apart() -> None:
    assert classify(refused()).outcome is Outcome.NOT_SENT
    assert not classify(refused()).reached
    assert classify(timed_out()).outcome is Outcome.IN_DOUBT
    rejected = classify(answered(grpc.StatusCode.UNAVAILABLE))
    assert rejected.outcome is Outcome.REJECTED
    assert rejected.reached
    assert rejected.reason == "OUTAGE"


async def test_an_open_breaker_fails_fast_without_an_attempt() -> None:
    h = Harness()
    h.breakers["GetCard"].force_open(h.clock.now() + timedelta(minutes=5))
    with pytest.raises(PlatformUnavailable) as raised:
        await h.caller.call("GetCard", OperationKind.READ, h.script("ok"))
    assert raised.value.reason.value == "PLATFORM_CIRCUIT_OPEN"
    assert raised.value.retry_after == timedelta(minutes=5)
    assert h.timeouts == []


async def test_a_spent_budget_stops_retries_and_is_counted() -> None:
    h = Harness(max_attempts=10)
    h.caller._budget = RetryBudget(BudgetSettings(ratio=0.0, min_retries_per_second=0.0), h.clock)
    with pytest.raises(GatewayError):
        await h.caller.call(
            "GetCard", OperationKind.READ, h.script(*[answered(grpc.StatusCode.UNAVAILABLE)] * 10)
        )
    assert len(h.timeouts) == 1
    data = h.reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "essc.platform.retry_budget.refusals" in names


async def test_a_business_refusal_is_not_retried_and_keeps_the_breaker_closed() -> None:
    h = Harness()
    h.breakers = Breakers(BreakerSettings(window=2, min_calls=1), h.clock, lambda *_: None)
    h.caller._breakers = h.breakers
    for _ in range(3):
        with pytest.raises(GatewayError) as raised:
            await h.caller.call(
                "GetCard",
                OperationKind.READ,
                h.script(answered(grpc.StatusCode.NOT_FOUND, reason="CARD_NOT_FOUND")),
            )
        assert raised.value.reason.value == "CARD_NOT_FOUND"
    assert len(h.timeouts) == 3  # one attempt each
    assert h.breakers["GetCard"].state.value == "CLOSED"


async def test_an_in_doubt_write_stopped_by_the_breaker_is_still_reported_in_doubt() -> None:
    h = Harness()

    async def recover(seconds: float) -> str | None:
        return None

    def open_after_first(state: object) -> None:
        h.breakers["IssueCard"].force_open(h.clock.now() + timedelta(minutes=1))

    attempt = h.script(timed_out(), "issued")
    original = h.caller._sleep

    async def sleep_then_open(seconds: float) -> None:
        open_after_first(None)
        await original(seconds)

    h.caller._sleep = sleep_then_open
    with pytest.raises(PlatformUnavailable) as raised:
        await h.caller.call("IssueCard", OperationKind.KEYED_WRITE, attempt, recover)
    assert raised.value.platform.outcome is Outcome.IN_DOUBT


async def test_a_failed_outcome_lookup_is_never_reported_as_a_refusal() -> None:
    h = Harness()

    async def recover(seconds: float) -> str | None:
        raise answered(grpc.StatusCode.NOT_FOUND, reason="PERSON_NOT_FOUND")

    with pytest.raises(PlatformUnavailable) as raised:
        await h.caller.call("IssueCard", OperationKind.KEYED_WRITE, h.script(timed_out()), recover)
    assert raised.value.platform.outcome is Outcome.IN_DOUBT


async def test_a_callers_short_deadline_does_not_count_against_the_platform() -> None:
    h = Harness(attempt_timeout=1.0)
    h.breakers = Breakers(BreakerSettings(window=5, min_calls=5), h.clock, lambda *_: None)
    h.caller._breakers = h.breakers
    for _ in range(10):
        token = request_deadline.set(h.clock.monotonic() + 0.2)  # an impatient bank
        try:
            with pytest.raises(PlatformTimeout):
                await h.caller.call("GetCard", OperationKind.READ, h.script(*[timed_out()] * 4))
        finally:
            request_deadline.reset(token)
    assert h.breakers["GetCard"].state.value == "CLOSED"
