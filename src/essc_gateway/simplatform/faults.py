"""What the simulated platform does to a call before answering it: today only latency.

One `FaultPlan` per platform; the server's interceptor asks it for a `CallPlan` per call.
Error rates, outages, hangs and maintenance answers will be added here, as more fields of
`CallPlan`, so that the interceptor keeps one question to ask.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

ALL_METHODS = "*"


@dataclass(frozen=True, slots=True)
class Latency:
    """Delay added before a method runs: `base` plus a uniform draw in [0, `jitter`)."""

    base: timedelta = timedelta(0)
    jitter: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.base < timedelta(0) or self.jitter < timedelta(0):
            raise ValueError("latency base and jitter must not be negative")

    @property
    def is_zero(self) -> bool:
        return not self.base and not self.jitter


NO_LATENCY = Latency()


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What happens to one call."""

    delay: float = 0.0
    """Seconds to wait before the handler runs."""


class FaultPlan:
    """Per-method fault configuration; a method's own entry wins over `ALL_METHODS`."""

    def __init__(self, rng: random.Random) -> None:
        # Its own random source: jitter draws must not shift the state's draws (card ids...).
        self._rng = rng
        self._latency: dict[str, Latency] = {}

    def set_latency(self, method: str, latency: Latency) -> None:
        """Sets (or, with a zero latency, clears) the latency of a full method name or "*"."""
        if method != ALL_METHODS and not _is_full_method_name(method):
            raise ValueError('method must be "*" or a full name like "/pkg.Service/Method"')
        if latency.is_zero:
            self._latency.pop(method, None)
        else:
            self._latency[method] = latency

    def latency_for(self, method: str) -> Latency:
        return self._latency.get(method) or self._latency.get(ALL_METHODS) or NO_LATENCY

    def plan_call(self, method: str) -> CallPlan:
        """Decides, for one call of `method`, what the platform does to it."""
        latency = self.latency_for(method)
        if latency.is_zero:
            return CallPlan()
        jitter = latency.jitter.total_seconds()
        extra = self._rng.uniform(0.0, jitter) if jitter else 0.0
        return CallPlan(delay=latency.base.total_seconds() + extra)


def _is_full_method_name(method: str) -> bool:
    parts = method.split("/")
    return len(parts) == 3 and parts[0] == "" and all(parts[1:])
