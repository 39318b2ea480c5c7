"""OpenTelemetry instruments of the gateway. Attributes never carry personal data: only
operation names, outcomes, status codes, bank ids and reasons."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from essc_gateway.upstream.breaker import BreakerState

_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class GatewayMetrics:
    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("essc_gateway")
        self.attempts = meter.create_counter(
            "essc.platform.attempts", description="Calls sent to the platform, by outcome"
        )
        self.retries = meter.create_counter(
            "essc.platform.retries", description="Attempts after the first, by operation"
        )
        self.budget_refusals = meter.create_counter(
            "essc.platform.retry_budget.refusals",
            description="Retries refused because the shared retry budget was spent",
        )
        self.breaker_transitions = meter.create_counter(
            "essc.platform.breaker.transitions", description="Circuit breaker state changes"
        )
        self.fast_failures = meter.create_counter(
            "essc.platform.fast_failures",
            description="Calls not sent: breaker open or maintenance window",
        )
        self.shed = meter.create_counter(
            "essc.gateway.shed", description="Requests refused to protect the gateway"
        )
        self._breaker_states: Callable[[], Iterable[tuple[str, BreakerState]]] = lambda: ()
        meter.create_observable_gauge(
            "essc.platform.breaker.state",
            callbacks=[self._observe_breakers],
            description="0 closed, 1 half-open, 2 open",
        )

    def watch_breakers(self, states: Callable[[], Iterable[tuple[str, BreakerState]]]) -> None:
        self._breaker_states = states

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(_BREAKER_VALUE[state], {"operation": operation})
            for operation, state in self._breaker_states()
        ]

    def breaker_changed(self, operation: str, state: BreakerState) -> None:
        self.breaker_transitions.add(1, {"operation": operation, "state": state.value})
