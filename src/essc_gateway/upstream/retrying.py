"""Calls to the platform that keep the caller's promises: retries with full-jitter
exponential back-off (tenacity, entered only once a first attempt failed), honouring the platform's
pushback, a per-attempt timeout, never sleeping or retrying past the caller's deadline, a
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
from opentelemetry.trace import NoOpTracer, SpanKind, Status, StatusCode, Tracer
from tenacity import AsyncRetrying, RetryCallState

from essc.platform.v1 import platform_pb2
from essc_gateway.clock import Clock
from essc_gateway.deadlines import request_deadline
from essc_gateway.errors import (
    ErrorReason,
    GatewayError,
    PlatformError,
    PlatformTimeout,
    PlatformUnavailable,
)
from essc_gateway.metrics import GatewayMetrics
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


class _AttemptFailed(Exception):
    def __init__(self, failure: AttemptFailure, error: grpc.aio.AioRpcError) -> None:
        super().__init__(failure.outcome.value)
        self.failure = failure
        self.error = error


class _LookupFailed(_AttemptFailed):
    """Asking the platform for an in-doubt write's outcome failed: still in doubt."""


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
            try:
                return await call.attempt_once()
            except _AttemptFailed as failed:
                first_failure = failed
            # Most calls succeed at once: only a failed first attempt pays for tenacity, which
            # starts by judging that failure (its attempt 1) as if it had made it.
            retrying = AsyncRetrying(
                stop=call.stop,
                wait=call.wait,
                retry=call.retryable,
                sleep=self._sleep,
                reraise=True,
            )
            return await retrying(_replay_first(first_failure, call.attempt_once))
        except _NotSent as not_sent:
            _attach(not_sent.error, call.history)
            if call.in_doubt:
                # An earlier attempt may have been processed: never report "not sent" then.
                not_sent.error.metadata.update(
                    {
                        "outcome": Outcome.IN_DOUBT.value,
                        "attempts": str(call.attempts),
                        "platform_reached": "unknown",
                    }
                )
            raise not_sent.error from None
        except _LookupFailed as failed:
            unknown = PlatformUnavailable(
                f"{operation}: outcome unknown; retry with the same idempotency key",
                upstream_code=failed.failure.code.name,
                metadata={
                    "operation": operation,
                    "outcome": Outcome.IN_DOUBT.value,
                    "attempts": str(call.attempts),
                    "platform_reached": "unknown",
                },
            )
            _attach(unknown, call.history)
            raise unknown from None
        except _AttemptFailed as failed:
            error = self._map_error(failed.error, failed.failure, operation)
            error.metadata.update(
                {
                    "outcome": (
                        Outcome.IN_DOUBT.value if call.in_doubt else failed.failure.outcome.value
                    ),
                    "attempts": str(call.attempts),
                    "platform_reached": str(failed.failure.reached).lower(),
                }
            )
            if call.cut_short and failed.failure.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                error.metadata["cause"] = "caller_deadline"
            _attach(error, call.history)
            raise error from None


def _code_number(status: grpc.StatusCode | None) -> int:
    return 2 if status is None else int(status.value[0])  # UNKNOWN when none applies


def _attach(error: GatewayError, history: list[PlatformAttempt]) -> None:
    if isinstance(error, PlatformError):
        error.attempts = tuple(history)


def _replay_first(
    failure: _AttemptFailed, attempt: Callable[[], Awaitable[T]]
) -> Callable[[], Awaitable[T]]:
    """`attempt`, except that its first call raises the `failure` already met."""
    replayed = False

    async def run() -> T:
        nonlocal replayed
        if not replayed:
            replayed = True
            raise failure
        return await attempt()

    return run


class _Call(Generic[T]):
    """The state of one call across its attempts, and tenacity's hooks for it."""

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

    def _not_sent(self, error: GatewayError) -> _NotSent:
        error.metadata.update({"operation": self._operation, "outcome": Outcome.NOT_SENT.value})
        return _NotSent(error)

    def _admit(self) -> float:
        timeout = self._timeout()
        if timeout < self._settings.min_attempt_time:
            raise self._not_sent(
                PlatformTimeout(
                    f"{self._operation}: no time left for the platform",
                    upstream_code="NOT_SENT",
                    metadata={"cause": "caller_deadline"},
                )
            )
        if not self._breaker.try_acquire():
            self._metrics.fast_failures.add(1, {"operation": self._operation, "cause": "breaker"})
            raise self._not_sent(
                PlatformUnavailable(
                    f"{self._operation}: platform circuit open",
                    upstream_code="NOT_SENT",
                    reason=ErrorReason.PLATFORM_CIRCUIT_OPEN,
                    retry_after=self._breaker.retry_after(),
                    metadata={"circuit_forced": str(self._breaker.forced).lower()},
                )
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
        with self._tracer.start_as_current_span(
            f"{service}/{self._operation}",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": self._operation,
                "essc.operation": self._operation,
                "essc.attempt": self.attempts,
                "essc.backoff_waited_ms": round(self._waited * 1000, 1),
                "essc.breaker_state": self._breaker.state.value,
                "essc.attempt_timeout_ms": round(timeout * 1000, 1),
            },
        ) as span:
            try:
                result = await self._attempt_in_span(timeout)
            except _AttemptFailed as failed:
                span.set_attribute("rpc.grpc.status_code", failed.failure.code.value[0])
                span.set_attribute("essc.outcome", failed.failure.outcome.value)
                span.set_attribute("essc.platform_reached", failed.failure.reached)
                span.set_status(Status(StatusCode.ERROR, failed.failure.code.name))
                raise
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
            span.set_attribute("essc.outcome", "OK")
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
                    raise _LookupFailed(failure, lookup_error) from None
                if recovered is not None:
                    self._breaker.record(True)
                    self._count("RECOVERED")
                    self._note(sent_at, started, "RECOVERED", "OK")
                    await self._observer.attempt_done(self._operation, None)
                    return recovered
                timeout = self._timeout()
                if timeout < self._settings.min_attempt_time:
                    raise _LookupFailed(
                        AttemptFailure(Outcome.IN_DOUBT, grpc.StatusCode.DEADLINE_EXCEEDED, True),
                        grpc.aio.AioRpcError(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.aio.Metadata(),
                            grpc.aio.Metadata(),
                            "no time left to re-send",
                        ),
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

    def retryable(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, _AttemptFailed) or not error.failure.transient:
            return False
        pushback = error.failure.retry_after
        if pushback is not None and pushback.total_seconds() > self._settings.max_pushback_wait:
            return False  # answered now with the platform's retry-after: the bank decides
        if self._kind is OperationKind.UNSAFE:
            return error.failure.outcome is not Outcome.IN_DOUBT
        return True

    def wait(self, state: RetryCallState) -> float:
        delay = self._backoff(state)
        self._waited = delay
        return delay

    def _backoff(self, state: RetryCallState) -> float:
        # Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^n)].
        ceiling = min(
            self._settings.backoff_cap,
            self._settings.backoff_base * 2 ** (state.attempt_number - 1),
        )
        delay = self._caller._rng.uniform(0, ceiling)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _AttemptFailed) and error.failure.retry_after is not None:
            delay = max(delay, error.failure.retry_after.total_seconds())
        return delay

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._settings.max_attempts:
            return True
        if self._remaining() - state.upcoming_sleep < self._settings.min_attempt_time:
            return True  # never sleep or retry past the caller's deadline
        if not self._caller._budget.try_retry():
            self._metrics.budget_refusals.add(1, {"operation": self._operation})
            return True
        return False
