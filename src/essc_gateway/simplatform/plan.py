"""`FaultPlan`: the active scenario on the platform's clock, and what it does to each call.

Decision order, when several rules match one call (at most one rule of each kind applies:
the most specific method pattern, then the first listed):

    connection > maintenance > outage > error > hang > latency, handler, answer_lost

Connection faults are applied by the network front (`network.py`) before gRPC sees
anything. Of the others, the first of maintenance, outage, error or hang that fires ends
the call before the handler runs; latency delays the handler; answer_lost withholds the
handler's answer.

Reproducible: call `n` (from 0, per method, counted since the scenario was set) of method
`m` draws from `random.Random(f"{seed}|{m}|{n}")`, always in the same order (error, hang,
answer_lost, then latency), so a call's decisions do not depend on how calls to other
methods interleave with it, nor on which other rules are present.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from essc_gateway.clock import Clock
from essc_gateway.simplatform.faults import (
    AnswerLost,
    ConnectionFailure,
    ConnectionMode,
    Errors,
    Fault,
    Hang,
    Latency,
    Maintenance,
    Outage,
    Rule,
    Scenario,
    check_method_pattern,
    method_matches,
    method_specificity,
)

_F = TypeVar("_F", Latency, Errors, Hang, AnswerLost)


class RejectionKind(StrEnum):
    MAINTENANCE = "MAINTENANCE"
    OUTAGE = "OUTAGE"
    INJECTED_ERROR = "INJECTED_ERROR"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An answer given instead of running the handler."""

    kind: RejectionKind
    code: str
    """gRPC status code name."""
    rule: int
    """Index of the rule in the scenario."""
    retry_after: timedelta | None = None
    """Time until the rule ends, when it has an end (maintenance and outage)."""


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What happens to one call."""

    rejection: Rejection | None = None
    hang: bool = False
    """No answer until the caller's deadline; the handler does not run."""
    delay: float = 0.0
    """Seconds to wait before the handler runs."""
    lose_answer: bool = False
    """Run the handler, then withhold its answer until the caller's deadline."""


NO_FAULT = CallPlan()


@dataclass(frozen=True, slots=True)
class ActiveRule:
    index: int
    rule: Rule
    remaining: timedelta | None
    """None when the rule lasts until cleared."""


class FaultPlan:
    """The platform's fault configuration: a scenario plus standing latencies (SetLatency).

    Listeners registered with `on_change` are told whenever the configuration changes (the
    network front uses it to re-check connection faults at once).
    """

    def __init__(self, clock: Clock, seed: int = 0) -> None:
        self._clock = clock
        self._default_seed = seed
        self._scenario: Scenario | None = None
        self._started = 0.0
        self._latency: dict[str, Latency] = {}
        self._calls: Counter[str] = Counter()
        self._listeners: list[Callable[[], None]] = []

    # --- configuration --------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario | None:
        return self._scenario

    @property
    def seed(self) -> int:
        return self._scenario.seed if self._scenario is not None else self._default_seed

    def set_scenario(self, scenario: Scenario) -> None:
        """Replaces any scenario; its timeline starts now and call indices restart at 0."""
        self._scenario = scenario
        self._started = self._clock.monotonic()
        self._calls.clear()
        self._changed()

    def clear(self) -> None:
        """No scenario, no standing latency."""
        self._scenario = None
        self._latency.clear()
        self._calls.clear()
        self._changed()

    def set_latency(self, method: str, latency: Latency) -> None:
        """Sets (or, with a zero latency, clears) the standing latency of a method pattern."""
        check_method_pattern(method)
        if latency.is_zero:
            self._latency.pop(method, None)
        else:
            self._latency[method] = latency
        self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    # --- timeline -------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the scenario was set (0 without one)."""
        if self._scenario is None:
            return 0.0
        return max(0.0, self._clock.monotonic() - self._started)

    def active_rules(self) -> list[ActiveRule]:
        if self._scenario is None:
            return []
        elapsed = self.elapsed()
        return [
            ActiveRule(index, rule, rule.remaining(elapsed))
            for index, rule in enumerate(self._scenario.rules)
            if rule.is_active(elapsed)
        ]

    def connection_fault(self) -> ConnectionFailure | None:
        """The connection fault in force now, if any (REFUSE wins over RESET)."""
        modes = [
            active.rule.fault
            for active in self.active_rules()
            if isinstance(active.rule.fault, ConnectionFailure)
        ]
        for mode in (ConnectionMode.REFUSE, ConnectionMode.RESET):
            for fault in modes:
                if fault.mode is mode:
                    return fault
        return None

    # --- per call -------------------------------------------------------------------------

    def plan_call(self, method: str) -> CallPlan:
        """Decides, for one call of `method`, what the platform does to it."""
        index = self._calls[method]
        self._calls[method] = index + 1
        active = self._matching(method)
        standing = self._standing_latency(method)
        if not active and standing is None:
            return NO_FAULT
        # A simulator wants reproducible draws, not secret ones.
        rng = random.Random(f"{self.seed}|{method}|{index}")  # noqa: S311
        error_draw, hang_draw, lost_draw = rng.random(), rng.random(), rng.random()

        maintenance = active.get(Maintenance)
        if maintenance is not None:
            return CallPlan(rejection=self._reject(RejectionKind.MAINTENANCE, maintenance))
        outage = active.get(Outage)
        if outage is not None:
            return CallPlan(rejection=self._reject(RejectionKind.OUTAGE, outage))
        errors = active.get(Errors)
        if errors is not None:
            code = _fault(errors, Errors).pick(error_draw)
            if code is not None:
                rejection = Rejection(RejectionKind.INJECTED_ERROR, code, errors.index)
                return CallPlan(rejection=rejection)
        hang = active.get(Hang)
        if hang is not None and hang_draw < _fault(hang, Hang).rate:
            return CallPlan(hang=True)
        latency_rule = active.get(Latency)
        latency = _fault(latency_rule, Latency) if latency_rule is not None else standing
        lost = active.get(AnswerLost)
        return CallPlan(
            delay=latency.draw(rng) if latency is not None else 0.0,
            lose_answer=lost is not None and lost_draw < _fault(lost, AnswerLost).rate,
        )

    # --- internals ------------------------------------------------------------------------

    def _matching(self, method: str) -> dict[type[Fault], ActiveRule]:
        """Per fault kind, the active rule for `method`: most specific, then first listed."""
        if self._scenario is None:
            return {}
        elapsed = self.elapsed()
        chosen: dict[type[Fault], ActiveRule] = {}
        for index, rule in enumerate(self._scenario.rules):
            if not rule.matches(method) or not rule.is_active(elapsed):
                continue
            kind = type(rule.fault)
            current = chosen.get(kind)
            if current is None or rule.specificity > current.rule.specificity:
                chosen[kind] = ActiveRule(index, rule, rule.remaining(elapsed))
        return chosen

    def _standing_latency(self, method: str) -> Latency | None:
        if not self._latency:
            return None
        best: tuple[int, Latency] | None = None
        for pattern, latency in self._latency.items():
            if method_matches(pattern, method):
                score = method_specificity(pattern)
                if best is None or score > best[0]:
                    best = (score, latency)
        return None if best is None else best[1]

    @staticmethod
    def _reject(kind: RejectionKind, active: ActiveRule) -> Rejection:
        return Rejection(kind, "UNAVAILABLE", active.index, retry_after=active.remaining)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()


def _fault(active: ActiveRule, kind: type[_F]) -> _F:
    fault = active.rule.fault
    assert isinstance(fault, kind)
    return fault
