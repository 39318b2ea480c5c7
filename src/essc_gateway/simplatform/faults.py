"""What can go wrong at the simulated platform: fault kinds, rules and scenarios (plain Python).

A `Scenario` is a seeded timeline of `Rule`s; `FaultPlan` (in `plan.py`) decides, per call,
which of them fire. No protobuf or gRPC types here: `scenario.py` translates.

Method patterns: `"*"` (every method), `"/pkg.Service/*"` (one service) or a full method
name `"/pkg.Service/Method"`. A more specific pattern wins over a less specific one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

ALL_METHODS = "*"

# gRPC status code names an error rule may answer with (OK is not an error).
STATUS_CODE_NAMES = frozenset(
    {
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)


class FaultError(ValueError):
    """A fault, rule or scenario that cannot be applied; the message names the problem."""


class LatencyDistribution(StrEnum):
    FIXED = "FIXED"
    UNIFORM = "UNIFORM"
    NORMAL = "NORMAL"
    LOGNORMAL = "LOGNORMAL"


@dataclass(frozen=True, slots=True)
class Latency:
    """Delay added before a method runs.

    `base` is the fixed delay (FIXED), the lower bound (UNIFORM, up to `base + jitter`),
    the mean (NORMAL, with `stddev`, negative draws truncated to 0) or the median
    (LOGNORMAL, `base * exp(N(0, sigma))`).
    """

    base: timedelta = timedelta(0)
    jitter: timedelta = timedelta(0)
    distribution: LatencyDistribution = LatencyDistribution.UNIFORM
    stddev: timedelta = timedelta(0)
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if min(self.base, self.jitter, self.stddev) < timedelta(0):
            raise FaultError("latency durations must not be negative")
        if not math.isfinite(self.sigma) or self.sigma < 0:
            raise FaultError("latency sigma must be a finite number >= 0")

    @property
    def is_zero(self) -> bool:
        return not self.base and not self.jitter

    def draw(self, rng: random.Random) -> float:
        """One delay, in seconds."""
        base = self.base.total_seconds()
        match self.distribution:
            case LatencyDistribution.FIXED:
                return base
            case LatencyDistribution.UNIFORM:
                jitter = self.jitter.total_seconds()
                return base + rng.uniform(0.0, jitter) if jitter else base
            case LatencyDistribution.NORMAL:
                return max(0.0, rng.gauss(base, self.stddev.total_seconds()))
            case LatencyDistribution.LOGNORMAL:
                return base * math.exp(rng.gauss(0.0, self.sigma)) if base else 0.0


@dataclass(frozen=True, slots=True)
class ErrorRate:
    code: str
    """A gRPC status code name other than OK, e.g. "UNAVAILABLE"."""
    rate: float


@dataclass(frozen=True, slots=True)
class Errors:
    """Error answers before the handler runs; one draw per call picks at most one code."""

    rates: tuple[ErrorRate, ...]

    def __post_init__(self) -> None:
        if not self.rates:
            raise FaultError("an error fault needs at least one rate")
        for rate in self.rates:
            if rate.code not in STATUS_CODE_NAMES:
                raise FaultError(f"unknown or non-error status code {rate.code!r}")
            _check_rate(rate.rate)
        if sum(rate.rate for rate in self.rates) > 1.0 + 1e-9:
            raise FaultError("error rates add up to more than 1")

    def pick(self, draw: float) -> str | None:
        """The code for a uniform draw in [0, 1), or None when no error fires."""
        threshold = 0.0
        for rate in self.rates:
            threshold += rate.rate
            if draw < threshold:
                return rate.code
        return None


@dataclass(frozen=True, slots=True)
class Outage:
    """Every call answered UNAVAILABLE before the handler runs."""


@dataclass(frozen=True, slots=True)
class Hang:
    """No answer until the caller's deadline; the request is not processed."""

    rate: float = 1.0

    def __post_init__(self) -> None:
        _check_rate(self.rate)


@dataclass(frozen=True, slots=True)
class AnswerLost:
    """The handler runs (a write is committed), then its answer is withheld.

    Error answers from the handler itself are not withheld.
    """

    rate: float = 1.0

    def __post_init__(self) -> None:
        _check_rate(self.rate)


@dataclass(frozen=True, slots=True)
class Maintenance:
    """The platform's own announced maintenance, until the rule ends."""


class ConnectionMode(StrEnum):
    REFUSE = "REFUSE"
    """Nothing listens: connections are refused, open ones reset."""
    RESET = "RESET"
    """Connections are accepted then reset before anything is forwarded."""


@dataclass(frozen=True, slots=True)
class ConnectionFailure:
    """The platform is not reached at all (acts on the network front, below gRPC)."""

    mode: ConnectionMode


Fault = Latency | Errors | Outage | Hang | AnswerLost | Maintenance | ConnectionFailure


@dataclass(frozen=True, slots=True)
class Rule:
    """One fault for the methods matching `method`, from `start_after` for `duration`."""

    fault: Fault
    method: str = ALL_METHODS
    start_after: timedelta = timedelta(0)
    duration: timedelta | None = None
    """None (or zero) means until the faults are cleared."""

    def __post_init__(self) -> None:
        check_method_pattern(self.method)
        if self.start_after < timedelta(0):
            raise FaultError("start_after must not be negative")
        if self.duration is not None and self.duration < timedelta(0):
            raise FaultError("duration must not be negative")
        if self.duration == timedelta(0):
            object.__setattr__(self, "duration", None)
        if isinstance(self.fault, ConnectionFailure) and self.method != ALL_METHODS:
            raise FaultError('a connection fault acts below gRPC: its method must be "*"')

    @property
    def specificity(self) -> int:
        """2 for a full method name, 1 for a service pattern, 0 for "*"."""
        return method_specificity(self.method)

    def matches(self, method: str) -> bool:
        return method_matches(self.method, method)

    def is_active(self, elapsed: float) -> bool:
        """Whether the rule is on, `elapsed` seconds into the scenario's timeline."""
        start = self.start_after.total_seconds()
        if elapsed < start:
            return False
        return self.duration is None or elapsed < start + self.duration.total_seconds()

    def remaining(self, elapsed: float) -> timedelta | None:
        """Time left at `elapsed` (for an active rule); None when it lasts until cleared."""
        if self.duration is None:
            return None
        end = (self.start_after + self.duration).total_seconds()
        return timedelta(seconds=max(0.0, end - elapsed))


@dataclass(frozen=True, slots=True)
class Scenario:
    """A seeded timeline of rules; the same seed replays the same decisions."""

    rules: tuple[Rule, ...] = field(default=())
    seed: int = 0


def check_method_pattern(pattern: str) -> None:
    if pattern == ALL_METHODS:
        return
    parts = pattern.split("/")
    if len(parts) != 3 or parts[0] or not all(parts[1:]) or "*" in parts[1]:
        raise FaultError(
            'method must be "*", "/pkg.Service/*" or a full name like "/pkg.Service/Method"'
        )


def method_specificity(pattern: str) -> int:
    if pattern == ALL_METHODS:
        return 0
    return 1 if pattern.endswith("/*") else 2


def method_matches(pattern: str, method: str) -> bool:
    if pattern == ALL_METHODS:
        return True
    if pattern.endswith("/*"):
        return method.startswith(pattern[:-1])
    return pattern == method


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise FaultError("a rate must be between 0 and 1")
