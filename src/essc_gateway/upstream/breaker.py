"""Circuit breakers, one per platform operation (closed -> open -> half-open -> closed), as
resilience4j does: a failure rate over the last calls opens it; after a pause a few probes
decide. An operator can also force one open until a given time."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from essc_gateway.clock import Clock


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True)
class BreakerSettings:
    window: int = 50
    """Outcomes remembered while closed."""
    min_calls: int = 20
    """Outcomes needed before the failure rate is judged."""
    failure_rate: float = 0.5
    """Failure share at or above which the breaker opens."""
    open_for: timedelta = timedelta(seconds=1)
    """Pause before probes are let through. Short: the outage ledger learns of a recovery
    only from a probe, and must date it within a second."""
    probes: int = 2
    """Concurrent probes while half-open; all must succeed to close."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_calls <= self.window:
            raise ValueError("min_calls must be within 1..window")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be within (0, 1]")
        if self.probes < 1 or self.open_for <= timedelta(0):
            raise ValueError("probes >= 1 and a positive open_for are required")


Listener = Callable[[str, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self, operation: str, settings: BreakerSettings, clock: Clock, listener: Listener
    ) -> None:
        self.operation = operation
        self._settings = settings
        self._clock = clock
        self._listener = listener
        self._state = BreakerState.CLOSED
        self._outcomes: deque[bool] = deque(maxlen=settings.window)
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._forced_until: datetime | None = None

    @property
    def state(self) -> BreakerState:
        self._refresh()
        return self._state

    def _transition(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self._listener(self.operation, state)

    def _refresh(self) -> None:
        if self._forced_until is not None and self._clock.now() >= self._forced_until:
            # The forced time is over: probe at once rather than wait another open_for.
            self._forced_until = None
            self._opened_at = self._clock.monotonic() - self._settings.open_for.total_seconds()
        if (
            self._state is BreakerState.OPEN
            and self._forced_until is None
            and self._clock.monotonic() - self._opened_at >= self._settings.open_for.total_seconds()
        ):
            self._probes_in_flight = self._probe_successes = 0
            self._transition(BreakerState.HALF_OPEN)

    def _open(self) -> None:
        self._opened_at = self._clock.monotonic()
        self._outcomes.clear()
        self._transition(BreakerState.OPEN)

    def retry_after(self) -> timedelta:
        """How long until a call may pass again."""
        if self._forced_until is not None:
            return max(self._forced_until - self._clock.now(), timedelta(0))
        if self._state is BreakerState.HALF_OPEN:
            return self._settings.open_for  # the probes are out; their verdict comes first
        waited = self._clock.monotonic() - self._opened_at
        return max(self._settings.open_for - timedelta(seconds=waited), timedelta(0))

    def try_acquire(self) -> bool:
        """Whether a call may go to the platform now. Pair every True with `record`."""
        self._refresh()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight < self._settings.probes:
            self._probes_in_flight += 1
            return True
        return False

    def record(self, success: bool) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(self._probes_in_flight - 1, 0)
            if not success:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self._settings.probes:
                self._outcomes.clear()
                self._transition(BreakerState.CLOSED)
            return
        if self._state is not BreakerState.CLOSED:
            return  # a straggler from before the breaker opened
        self._outcomes.append(success)
        failures = self._outcomes.count(False)
        if (
            len(self._outcomes) >= self._settings.min_calls
            and failures / len(self._outcomes) >= self._settings.failure_rate
        ):
            self._open()

    @property
    def forced(self) -> bool:
        """Held open by an operator rather than by the platform's failures."""
        return self._forced_until is not None

    @property
    def forced_until(self) -> datetime | None:
        return self._forced_until

    def abandon(self) -> None:
        """An admitted call ended without a verdict (cancelled): frees its probe slot."""
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(self._probes_in_flight - 1, 0)

    def force_open(self, until: datetime) -> None:
        """Keeps the breaker open until `until` (wall clock), e.g. for a known outage."""
        self._forced_until = until
        self._open()

    def release(self) -> None:
        """Ends a forced or natural opening now: the breaker probes the platform again."""
        self._forced_until = None
        if self._state is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic() - self._settings.open_for.total_seconds()
            self._refresh()


class Breakers:
    """One breaker per operation, created on first use."""

    def __init__(self, settings: BreakerSettings, clock: Clock, listener: Listener) -> None:
        self._settings = settings
        self._clock = clock
        self._listener = listener
        self._breakers: dict[str, CircuitBreaker] = {}

    def __getitem__(self, operation: str) -> CircuitBreaker:
        breaker = self._breakers.get(operation)
        if breaker is None:
            breaker = CircuitBreaker(operation, self._settings, self._clock, self._listener)
            self._breakers[operation] = breaker
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def apply_forced(self, forced: Mapping[str, datetime]) -> None:
        """Makes the operator's forced circuits of the whole cluster (from the store) hold
        here: forced ones open until their time, released ones probe again. Openings of
        this replica's own making (the platform's failures) are left alone."""
        now = self._clock.now()
        for operation, until in forced.items():
            if until > now and self[operation].forced_until != until:
                self[operation].force_open(until)
        for breaker in self:
            if breaker.forced and breaker.operation not in forced:
                breaker.release()
