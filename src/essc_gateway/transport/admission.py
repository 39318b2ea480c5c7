"""The gateway protects itself before it overloads: a bound on requests in flight (per
replica), and a rate limit per bank (for the cluster, `shared_rate`). Both shed at once with
RESOURCE_EXHAUSTED and a RetryInfo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from essc_gateway.clock import Clock
from essc_gateway.errors import ErrorReason, ResourceExhausted


@dataclass(frozen=True)
class RateLimit:
    per_second: float = 500.0
    burst: float = 1000.0

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")


class TokenBucket:
    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self._limit = limit
        self._clock = clock
        self._tokens = limit.burst
        self._updated = clock.monotonic()

    def try_take(self) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        now = self._clock.monotonic()
        limit = self._limit
        self._tokens = min(limit.burst, self._tokens + (now - self._updated) * limit.per_second)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / limit.per_second


class RateLimiter(Protocol):
    async def admit(self) -> None:
        """Takes one request's token, or raises ResourceExhausted (RATE_LIMITED)."""
        ...


class Admission:
    def __init__(self, max_in_flight: int, rate_limits: Mapping[str, RateLimiter]) -> None:
        """`rate_limits`: per bank (the cluster's shared buckets, see `shared_rate`)."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._rate_limits = rate_limits

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def enter(self, bank_id: str) -> None:
        """Admits one request of `bank_id` or raises ResourceExhausted. Pair with `leave`."""
        limiter = self._rate_limits.get(bank_id)
        if limiter is not None:
            await limiter.admit()
        if self._in_flight >= self._max_in_flight:
            raise ResourceExhausted(
                "gateway is at capacity; retry shortly",
                retry_after=timedelta(milliseconds=100),
                reason=ErrorReason.OVERLOADED,
            )
        self._in_flight += 1

    def leave(self) -> None:
        self._in_flight -= 1
