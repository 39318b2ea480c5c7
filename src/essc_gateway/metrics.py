"""OpenTelemetry instruments of the gateway. Attributes never carry personal data: only
operation names, outcomes, status codes, bank ids and reasons."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

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
        # OpenTelemetry's RPC semantic conventions: durations in seconds.
        self.server_duration = meter.create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Calls served, by method and gRPC status code",
        )
        self.server_in_flight = meter.create_up_down_counter(
            "rpc.server.active_calls", unit="{call}", description="Calls being served"
        )
        self.client_duration = meter.create_histogram(
            "rpc.client.call.duration",
            unit="s",
            description="Platform attempts, by operation and gRPC status code",
        )
        self.ledger_append_duration = meter.create_histogram(
            "essc.ledger.append.duration",
            unit="s",
            description="One group-committed batch of liability records, with its log entries",
        )
        self.ledger_append_batch = meter.create_histogram(
            "essc.ledger.append.batch_size",
            unit="{record}",
            description="Liability records per group-committed batch",
        )
        self.ledger_append_failures = meter.create_counter(
            "essc.ledger.append.failures",
            unit="{batch}",
            description="Batches of liability records the store could not commit",
        )
        self._gauges: dict[str, Callable[[], Mapping[tuple[tuple[str, str], ...], int]]] = {}
        for name, unit, description in (
            ("essc.maintenance.windows.active", "{window}", "Windows in force now, by kind"),
            ("essc.outages.open", "{outage}", "Open platform outages, by operation"),
            ("essc.forward.queue.depth", "{issue}", "Issuances waiting to be forwarded"),
            ("essc.store.pool.connections", "{connection}", "Store connections, by state"),
            ("essc.tls.certificate.expiry", "s", "Seconds until a TLS certificate expires"),
            ("essc.runtime.tasks", "{task}", "asyncio tasks alive: a steady rise is a leak"),
        ):
            meter.create_observable_gauge(
                name, callbacks=[self._observer(name)], unit=unit, description=description
            )
        self._breaker_states: Callable[[], Iterable[tuple[str, BreakerState]]] = lambda: ()
        meter.create_observable_gauge(
            "essc.platform.breaker.state",
            callbacks=[self._observe_breakers],
            description="0 closed, 1 half-open, 2 open",
        )

    def watch_breakers(self, states: Callable[[], Iterable[tuple[str, BreakerState]]]) -> None:
        self._breaker_states = states

    def watch(
        self, name: str, values: Callable[[], Mapping[tuple[tuple[str, str], ...], int]]
    ) -> None:
        """Reports `values()` (attributes -> value) as the gauge `name` at each collection."""
        self._gauges[name] = values

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            values = self._gauges.get(name)
            if values is None:
                return []
            return [Observation(value, dict(attributes)) for attributes, value in values().items()]

        return observe

    def ledger_appended(self, records: int, seconds: float, committed: bool) -> None:
        if committed:
            self.ledger_append_duration.record(seconds)
            self.ledger_append_batch.record(records)
        else:
            self.ledger_append_failures.add(1)

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(_BREAKER_VALUE[state], {"operation": operation})
            for operation, state in self._breaker_states()
        ]

    def breaker_changed(self, operation: str, state: BreakerState) -> None:
        self.breaker_transitions.add(1, {"operation": operation, "state": state.value})
