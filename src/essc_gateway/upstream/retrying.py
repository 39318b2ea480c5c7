"""Calls to the platform that keep the caller's promises: retries with full-jitter
exponential back-off (a plain loop: admit, try, classify, decide, back off), honouring the
platform's pushback, a per-attempt timeout, never sleeping or retrying past the caller's deadline, a
shared retry budget, a breaker per operation, and in-doubt writes resolved by asking the
platform for the outcome before re-sending."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import grpc
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from essc.platform.v1 import platform_pb2
from essc_gateway.clock import Clock
from essc_gateway.deadlines import request_deadline
from essc_gateway.errors import (
    ErrorReason,
    FailureCause,
    GatewayError,
    PlatformError,
    PlatformFacts,
    PlatformTimeout,
    PlatformUnavailable,
    Reach,
)
from essc_gateway.metrics import GatewayMetrics
from essc_gateway.tracing.deferred import child_span
from essc_gateway.upstream.attempts import PlatformAttempt
from essc_gateway.upstream.breaker import Breakers
from essc_gateway.upstream.budget import RetryBudget
from essc_gateway.upstream.outcomes import AttemptFailure, Outcome, classify

T = TypeVar("T")
PLATFORM_SERVICES = {
    method.name: service.full_name
    for service in platform_pb2.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}
"""The platform service of each operation, for the client spans' names (RPC conventions)."""

# Answers that say the platform is healthy and simply said no.
_BUSINESS_CODES = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


class OperationKind(StrEnum):
    READ = "READ"
    """Idempotent: any transient failure may be retried."""
    KEYED_WRITE = "KEYED_WRITE"
    """Idempotent by key: after an in-doubt attempt, ask for the outcome before re-sending."""
    UNSAFE = "UNSAFE"
    """Not idempotent (an SMS sent, an attempt consumed): retry only what was never processed."""


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = 4
    attempt_timeout: float = 1.0
    """Seconds one attempt may take (shortened to the caller's remaining deadline)."""
    default_deadline: float = 10.0
    """Seconds a whole call may take when the caller set no deadline."""
    backoff_base: float = 0.05
    backoff_cap: float = 1.0
    deadline_margin: float = 0.02
    """Seconds kept back so that the gateway answers before the caller's deadline."""
    min_attempt_time: float = 0.05
    """No attempt starts with less time than this left."""
    max_pushback_wait: float = 1.0
    """Seconds the gateway waits at most on the platform's retry-after: a longer pushback is
    answered at once (UNAVAILABLE with that retry-after), not held until the caller's answer
    is no longer useful."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.attempt_timeout, self.default_deadline, self.backoff_base) <= 0:
            raise ValueError("timeouts and back-off must be positive")


class _Failed(Exception):
    """An attempt that failed in a way worth judging for another."""

    def __init__(self, failure: AttemptFailure) -> None:
        super().__init__(failure.outcome.value)
        self.failure = failure


class _AttemptFailed(_Failed):
    def __init__(self, failure: AttemptFailure, error: grpc.aio.AioRpcError) -> None:
        super().__init__(failure)
        self.error = error


class _LookupFailed(_Failed):
    """Asking the platform for an in-doubt write's outcome failed (or left no time to
    re-send): still in doubt."""


class _NotSent(Exception):
    """No attempt made: breaker open or no time left."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.reason.value)
        self.error = error


ErrorMapper = Callable[[grpc.aio.AioRpcError, AttemptFailure, str], GatewayError]


class AttemptObserver(Protocol):
    """Told of every attempt's result (the outage ledger watches the platform this way)."""

    async def attempt_done(self, operation: str, failure: AttemptFailure | None) -> None:
        """`failure` is None for a good answer, a business refusal included."""
        ...


class _NoObserver:
    async def attempt_done(self, operation: str, failure: AttemptFailure | None) -> None:
        return None


class ResilientCaller:
    def __init__(
        self,
        settings: RetrySettings,
        budget: RetryBudget,
        breakers: Breakers,
        metrics: GatewayMetrics,
        clock: Clock,
        rng: random.Random,
        map_error: ErrorMapper,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: AttemptObserver | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._observer: AttemptObserver = observer or _NoObserver()
        self._tracer = tracer or NoOpTracer()
        self._settings = settings
        self._budget = budget
        self._breakers = breakers
        self._metrics = metrics
        self._clock = clock
        self._rng = rng
        self._map_error = map_error
        self._sleep = sleep

    def _deadline(self) -> float:
        caller = request_deadline.get()
        own = self._clock.monotonic() + self._settings.default_deadline
        return own if caller is None else min(caller, own)

    async def call(
        self,
        operation: str,
        kind: OperationKind,
        attempt: Callable[[float], Awaitable[T]],
        recover: Callable[[float], Awaitable[T | None]] | None = None,
    ) -> T:
        """Runs `attempt(seconds)` until it succeeds or may not be tried again.

        `recover(seconds)` (for KEYED_WRITE) returns the outcome of an earlier in-doubt
        attempt if the platform has one, else None.
        """
        self._budget.record_request()
        call = _Call(self, operation, kind, attempt, recover, self._deadline())
        try:
            return await call.run()
        except _NotSent as not_sent:
            error = not_sent.error
            facts = _facts_of(error, operation)
            if call.in_doubt:
                # An earlier attempt may have been processed: never report "not sent" then.
                facts.outcome, facts.attempts, facts.reach = (
                    Outcome.IN_DOUBT, call.attempts, Reach.UNKNOWN
                )  # fmt: skip
            _attach(error, call.history)
            raise error from None
        except _LookupFailed as failed:
            unknown = PlatformUnavailable(
                f"{operation}: outcome unknown; retry with the same idempotency key",
                upstream_code=failed.failure.code.name,
                platform=PlatformFacts(operation, Outcome.IN_DOUBT, call.attempts, Reach.UNKNOWN),
            )
            _attach(unknown, call.history)
            raise unknown from None
        except _AttemptFailed as failed:
            error = self._map_error(failed.error, failed.failure, operation)
            facts = _facts_of(error, None)
            facts.outcome = Outcome.IN_DOUBT if call.in_doubt else failed.failure.outcome
            facts.attempts = call.attempts
            facts.reach = Reach.REACHED if failed.failure.reached else Reach.NOT_REACHED
            if call.cut_short and failed.failure.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                facts.cause = FailureCause.CALLER_DEADLINE
            _attach(error, call.history)
            raise error from None


def _facts_of(error: GatewayError, operation: str | None) -> PlatformFacts:
    """The error's platform facts, made if it has none (`operation` named if given)."""
    if error.platform is None:
        error.platform = PlatformFacts(operation or "")
    return error.platform


_OK_ATTRIBUTES: dict[str, AttributeValue] = {
    "rpc.grpc.status_code": grpc.StatusCode.OK.value[0],
    "essc.outcome": "OK",
}


def _failed_attributes(failure: AttemptFailure) -> dict[str, AttributeValue]:
    return {
        "rpc.grpc.status_code": failure.code.value[0],
        "essc.outcome": failure.outcome.value,
        "essc.platform_reached": failure.reached,
    }


def _code_number(status: grpc.StatusCode | None) -> int:
    return 2 if status is None else int(status.value[0])  # UNKNOWN when none applies


def _attach(error: GatewayError, history: list[PlatformAttempt]) -> None:
    if isinstance(error, PlatformError):
        error.attempts = tuple(history)


class _Call(Generic[T]):
    """The state of one call across its attempts, and the loop that makes them."""

    def __init__(
        self,
        caller: ResilientCaller,
        operation: str,
        kind: OperationKind,
        attempt: Callable[[float], Awaitable[T]],
        recover: Callable[[float], Awaitable[T | None]] | None,
        deadline: float,
    ) -> None:
        self._caller = caller
        self._settings = caller._settings
        self._metrics = caller._metrics
        self._clock = caller._clock
        self._operation = operation
        self._kind = kind
        self._attempt = attempt
        self._recover = recover
        self._deadline = deadline
        self._breaker = caller._breakers[operation]
        self._observer = caller._observer
        self._tracer = caller._tracer
        self._waited = 0.0
        self.history: list[PlatformAttempt] = []
        """Each attempt made, for the liability record's evidence."""
        self.in_doubt = False
        self.cut_short = False
        self.attempts = 0

    def _remaining(self) -> float:
        return self._deadline - self._clock.monotonic() - self._settings.deadline_margin

    def _timeout(self) -> float:
        return min(self._settings.attempt_timeout, self._remaining())

    def _not_sent(self, error: GatewayError, facts: PlatformFacts) -> _NotSent:
        facts.operation, facts.outcome = self._operation, Outcome.NOT_SENT
        error.platform = facts
        return _NotSent(error)

    def _admit(self) -> float:
        timeout = self._timeout()
        if timeout < self._settings.min_attempt_time:
            raise self._not_sent(
                PlatformTimeout(
                    f"{self._operation}: no time left for the platform",
                    upstream_code="NOT_SENT",
                ),
                PlatformFacts(cause=FailureCause.CALLER_DEADLINE),
            )
        if not self._breaker.try_acquire():
            self._metrics.fast_failures.add(1, {"operation": self._operation, "cause": "breaker"})
            raise self._not_sent(
                PlatformUnavailable(
                    f"{self._operation}: platform circuit open",
                    upstream_code="NOT_SENT",
                    reason=ErrorReason.PLATFORM_CIRCUIT_OPEN,
                    retry_after=self._breaker.retry_after(),
                ),
                PlatformFacts(circuit_forced=self._breaker.forced),
            )
        self.attempts += 1
        if self.attempts > 1:
            self._metrics.retries.add(1, {"operation": self._operation})
        return timeout

    def _count(self, outcome: str, code: str = "OK") -> None:
        self._metrics.attempts.add(
            1, {"operation": self._operation, "outcome": outcome, "code": code}
        )

    async def attempt_once(self) -> T:
        timeout = self._admit()
        service = PLATFORM_SERVICES.get(self._operation, "essc.platform.v1")
        name = f"{service}/{self._operation}"
        attributes: dict[str, AttributeValue] = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": self._operation,
            "essc.operation": self._operation,
            "essc.attempt": self.attempts,
            "essc.backoff_waited_ms": round(self._waited * 1000, 1),
            "essc.breaker_state": self._breaker.state.value,
            "essc.attempt_timeout_ms": round(timeout * 1000, 1),
        }
        with child_span(self._tracer, name, SpanKind.CLIENT, attributes) as span:
            try:
                result = await self._attempt_in_span(timeout)
            except _Failed as failed:
                span.set_attributes(_failed_attributes(failed.failure))
                span.fail(failed.failure.code.name)
                raise
            span.set_attributes(_OK_ATTRIBUTES)
            return result

    def _note(
        self,
        sent_at: datetime,
        started: float,
        outcome: str,
        code: str,
        failure: AttemptFailure | None = None,
    ) -> None:
        retry_after = None if failure is None else failure.retry_after
        seconds = self._clock.monotonic() - started
        status = grpc.StatusCode[code] if code in grpc.StatusCode.__members__ else None
        self._metrics.client_duration.record(
            seconds,
            {
                "rpc.system": "grpc",
                "rpc.method": self._operation,
                "rpc.grpc.status_code": _code_number(status),
                "essc.outcome": outcome,
            },
        )
        self.history.append(
            PlatformAttempt(
                operation=self._operation,
                sent_at=sent_at,
                duration_ms=round(seconds * 1000, 1),
                code=code,
                outcome=outcome,
                platform_reason="" if failure is None else failure.reason,
                retry_after_ms=None if retry_after is None else retry_after.total_seconds() * 1000,
            )
        )

    async def _attempt_in_span(self, seconds: float) -> T:
        timeout = seconds
        sent_at, started = self._clock.now(), self._clock.monotonic()
        try:
            if self.in_doubt and self._recover is not None:
                try:
                    recovered = await self._recover(timeout)
                except grpc.aio.AioRpcError as lookup_error:
                    failure = classify(lookup_error)
                    self._count("LOOKUP_FAILED", failure.code.name)
                    self._note(sent_at, started, "LOOKUP_FAILED", failure.code.name, failure)
                    raise _LookupFailed(failure) from None
                if recovered is not None:
                    self._breaker.record(True)
                    self._count("RECOVERED")
                    self._note(sent_at, started, "RECOVERED", "OK")
                    await self._observer.attempt_done(self._operation, None)
                    return recovered
                timeout = self._timeout()
                if timeout < self._settings.min_attempt_time:
                    # No time left to re-send: still in doubt.
                    raise _LookupFailed(
                        AttemptFailure(Outcome.IN_DOUBT, grpc.StatusCode.DEADLINE_EXCEEDED, True)
                    )
            result = await self._attempt(timeout)
        except asyncio.CancelledError:
            # A sibling call failed (fan-out) or the caller left: no verdict on the platform.
            self._breaker.abandon()
            self._count("CANCELLED", "CANCELLED")
            self._note(sent_at, started, "CANCELLED", "CANCELLED")
            raise
        except grpc.aio.AioRpcError as error:
            failure = replace(classify(error), sent_at=sent_at)
            self._note(sent_at, started, failure.outcome.value, failure.code.name, failure)
            healthy = failure.outcome is Outcome.REJECTED and failure.code in _BUSINESS_CODES
            self._count(failure.outcome.value, failure.code.name)
            cut_short = (
                failure.code == grpc.StatusCode.DEADLINE_EXCEEDED
                and timeout < self._settings.attempt_timeout
            )
            if cut_short:
                # The caller's own short deadline, not the platform's slowness: one bank's
                # impatience must not open the circuit (or an outage) for every bank.
                self._breaker.abandon()
                self.cut_short = True
            else:
                self._breaker.record(healthy)
                await self._observer.attempt_done(self._operation, None if healthy else failure)
            self.in_doubt = self.in_doubt or failure.outcome is Outcome.IN_DOUBT
            raise _AttemptFailed(failure, error) from None
        except Exception:
            # Not the platform's answer (a bug, a closed channel): no verdict on it, and a
            # half-open circuit's probe slot is given back rather than held for good.
            self._breaker.abandon()
            raise
        self._breaker.record(True)
        self._count("OK")
        self._note(sent_at, started, "OK", "OK")
        await self._observer.attempt_done(self._operation, None)
        return result

    async def run(self) -> T:
        """Attempt, classify, decide, back off: until an answer or a reason to stop."""
        while True:
            try:
                return await self.attempt_once()
            except _Failed as failed:
                if not self._retryable(failed.failure):
                    raise
                delay = self._backoff(failed.failure)
                if self._stop(delay):
                    raise
            self._waited = delay
            await self._caller._sleep(delay)

    def _retryable(self, failure: AttemptFailure) -> bool:
        if not failure.transient:
            return False
        pushback = failure.retry_after
        if pushback is not None and pushback.total_seconds() > self._settings.max_pushback_wait:
            return False  # answered now with the platform's retry-after: the bank decides
        if self._kind is OperationKind.UNSAFE:
            return failure.outcome is not Outcome.IN_DOUBT
        return True

    def _backoff(self, failure: AttemptFailure) -> float:
        # Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^n)], n the
        # failures before this one; never shorter than the platform's pushback.
        ceiling = min(
            self._settings.backoff_cap,
            self._settings.backoff_base * 2 ** (self.attempts - 1),
        )
        delay = self._caller._rng.uniform(0, ceiling)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after.total_seconds())
        return delay

    def _stop(self, delay: float) -> bool:
        if self.attempts >= self._settings.max_attempts:
            return True
        if self._remaining() - delay < self._settings.min_attempt_time:
            return True  # never sleep or retry past the caller's deadline
        if not self._caller._budget.try_retry():
            self._metrics.budget_refusals.add(1, {"operation": self._operation})
            return True
        return False
