"""A retry budget shared by all platform calls (as Finagle and Envoy keep one): retries may
add at most `ratio` of the first attempts seen in a sliding window, plus a small floor, so that
a full outage cannot multiply the load on the platform."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from essc_gateway.clock import Clock


@dataclass(frozen=True)
class BudgetSettings:
    ratio: float = 0.2
    """Retries allowed per first attempt in the window."""
    min_retries_per_second: float = 1.0
    """Floor, so that a quiet gateway can still retry the odd failure."""
    window_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise ValueError("ratio must be within 0..1")
        if self.min_retries_per_second < 0 or self.window_seconds <= 0:
            raise ValueError("floor must be >= 0 and the window positive")


class RetryBudget:
    def __init__(self, settings: BudgetSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self._replicas = 1

    def share_with(self, replicas: int) -> None:
        """The cluster's live replicas: the ratio is each replica's own (it follows that
        replica's traffic), but the floor is the cluster's, split between them, so that N
        replicas retry no more during a quiet outage than one would."""
        self._replicas = max(1, replicas)

    def _trim(self, now: float) -> None:
        horizon = now - self._settings.window_seconds
        for events in (self._requests, self._retries):
            while events and events[0] <= horizon:
                events.popleft()

    def record_request(self) -> None:
        """A first attempt: it earns `ratio` of a retry."""
        now = self._clock.monotonic()
        self._trim(now)
        self._requests.append(now)

    def try_retry(self) -> bool:
        """Spends one retry if the budget allows it."""
        now = self._clock.monotonic()
        self._trim(now)
        settings = self._settings
        allowed = (
            settings.ratio * len(self._requests)
            + settings.min_retries_per_second * settings.window_seconds / self._replicas
        )
        if len(self._retries) + 1 > allowed:
            return False
        self._retries.append(now)
        return True
