"""`SimulatedPlatform`: the platform's gRPC server behind its network front, with faults.

Two addresses: `address` is the network front (a TCP proxy, `network.py`), what the
gateway dials and where connection faults act; `control_address` is the gRPC server itself,
for ControlService, so that the control plane keeps working while the data plane is down.
Every service is served on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.clock import Clock, SystemClock
from essc_gateway.runtime import settle_heap
from essc_gateway.simplatform.faults import Scenario
from essc_gateway.simplatform.interceptor import PlatformInterceptor
from essc_gateway.simplatform.network import NetworkStats, PlatformProxy
from essc_gateway.simplatform.plan import FaultPlan
from essc_gateway.simplatform.population import Population, generate_population
from essc_gateway.simplatform.scenario import ScenarioSource, load_scenario, to_scenario
from essc_gateway.simplatform.servicers import (
    AuthServicer,
    CardServicer,
    ControlServicer,
    IdentityServicer,
    OperationServicer,
    RecordsServicer,
)
from essc_gateway.simplatform.state import PlatformState

SERVICE_NAMES = tuple(
    f"essc.platform.v1.{name}"
    for name in (
        "IdentityService",
        "CardService",
        "AuthService",
        "RecordsService",
        "OperationService",
        "ControlService",
    )
)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - compared, not bound


@dataclass(frozen=True)
class ServerTls:
    """The platform's own certificate, and the CA whose client certificates it accepts."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path


class SimulatedPlatform:
    """The national platform, simulated behind its real gRPC contract.

    Deterministic by default: the random source is seeded from the population's seed, and
    fault decisions from the scenario's seed.

    Usage::

        async with SimulatedPlatform(generate_population()) as platform:
            channel = grpc.aio.insecure_channel(platform.address)
            await platform.apply_scenario(Path("deploy/scenarios/outage.json"))
    """

    def __init__(
        self,
        population: Population,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        sms_code_ttl: timedelta = timedelta(minutes=5),
        sms_max_attempts: int = 3,
        network: bool = True,
        network_poll_interval: float = 0.05,
    ) -> None:
        """
        Args:
            network: put the network front (TCP proxy) before the gRPC server. Without it
                `address` is the gRPC server's and connection faults have no effect.
            network_poll_interval: seconds of real time between the network front's checks
                of the timeline (it also checks on every accept and on `sync_network`).
        """
        self.population = population
        self.clock: Clock = clock or SystemClock()
        # A simulator wants reproducible draws, not secret ones.
        rng = rng or random.Random(population.seed or 0)  # noqa: S311
        # Fault decisions have their own seed: they must not shift the state's draws.
        self.faults = FaultPlan(self.clock, seed=rng.getrandbits(64))
        self.faults.on_change(self._faults_changed)
        self.state = PlatformState(
            population,
            clock=self.clock,
            rng=rng,
            sms_code_ttl=sms_code_ttl,
            sms_max_attempts=sms_max_attempts,
        )
        self.call_counts: Counter[str] = Counter()
        self.received_traceparents: dict[str, str] = {}
        """The last W3C traceparent received per method (tracing tests)."""
        self._network = network
        self._poll_interval = network_poll_interval
        self._network_stats = NetworkStats()
        self._proxy: PlatformProxy | None = None
        self._health: HealthServicer | None = None
        self._server: grpc.aio.Server | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._control_port: int | None = None

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int = 0,
        tls: ServerTls | None = None,
    ) -> int:
        """Binds and starts; returns the port clients dial (useful with port 0).

        The gRPC server binds `host:control_port`, the network front `host:port`. With
        `tls`, it speaks TLS and requires a client certificate its CA signed (the national
        platform's mTLS); the network front passes TLS through untouched.
        """
        if self._server is not None:
            raise RuntimeError("platform already started")
        server = self._build_server()
        raw_host = host.strip("[]")
        bind_host = f"[{raw_host}]" if ":" in raw_host else raw_host
        address = f"{bind_host}:{control_port if self._network else port}"
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
                root_certificates=tls.client_ca_file.read_bytes(),
                require_client_auth=True,
            )
            bound = server.add_secure_port(address, credentials)
        if bound == 0:
            raise RuntimeError("could not bind the platform's port")
        assert self._health is not None
        for name in SERVICE_NAMES:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        self._server = server
        self._host = "127.0.0.1" if host in _WILDCARD_HOSTS else bind_host
        self._control_port = self._port = bound
        if self._network:
            proxy = PlatformProxy(
                (_loopback_for(raw_host), bound),
                self.faults.connection_fault,
                stats=self._network_stats,
                poll_interval=self._poll_interval,
            )
            try:
                self._port = await proxy.start(raw_host, port)
            except BaseException:
                await proxy.close()
                await self.stop(0)
                raise
            self._proxy = proxy
        return self._port

    def _build_server(self) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[
                PlatformInterceptor(
                    self.faults, self.call_counts, self.clock, self.received_traceparents
                )
            ]
        )
        pb_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(self.state), server)
        pb_grpc.add_CardServiceServicer_to_server(CardServicer(self.state), server)
        pb_grpc.add_AuthServiceServicer_to_server(AuthServicer(self.state), server)
        pb_grpc.add_RecordsServiceServicer_to_server(RecordsServicer(self.state), server)
        pb_grpc.add_OperationServiceServicer_to_server(OperationServicer(self.state), server)
        control = ControlServicer(self.state, self.faults, self.call_counts, self._network_stats)
        pb_grpc.add_ControlServiceServicer_to_server(control, server)
        # A fresh one per start: after a graceful shutdown a health servicer stays NOT_SERVING.
        self._health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        return server

    @property
    def port(self) -> int:
        """The port clients dial (the network front's)."""
        if self._port is None:
            raise RuntimeError("platform not started")
        return self._port

    @property
    def address(self) -> str:
        """Where a client connects, e.g. "127.0.0.1:50061" (through the network front)."""
        return f"{self._host}:{self.port}"

    @property
    def control_port(self) -> int:
        """The gRPC server's own port: unaffected by connection faults."""
        if self._control_port is None:
            raise RuntimeError("platform not started")
        return self._control_port

    @property
    def control_address(self) -> str:
        """The gRPC server's own address, for ControlService during connection faults."""
        return f"{self._host}:{self.control_port}"

    @property
    def network_stats(self) -> NetworkStats:
        """Connections seen by the network front (zeros without one)."""
        return self._network_stats

    async def apply_scenario(self, scenario: ScenarioSource | Scenario) -> None:
        """Replaces any fault scenario; its timeline starts now, on the platform's clock.

        Accepts a `FaultScenario` message, its JSON form as a dict, or a scenario file.
        Raises `FaultError` for a scenario that cannot be applied.
        """
        self.faults.set_scenario(to_scenario(scenario))
        await self.sync_network()

    async def clear_faults(self) -> None:
        """No scenario, no standing latency: the platform answers normally again."""
        self.faults.clear()
        await self.sync_network()

    async def sync_network(self) -> None:
        """Makes the network front follow the timeline now (after a fake clock moved)."""
        if self._proxy is not None:
            await self._proxy.sync()

    async def stop(self, grace: float | None = 1.0) -> None:
        """Reports NOT_SERVING, then lets calls in flight finish for up to `grace` seconds."""
        server, self._server = self._server, None
        if server is None:
            return
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.stop_accepting()
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await server.stop(grace)
        if proxy is not None:
            await proxy.close()

    def _faults_changed(self) -> None:
        if self._proxy is not None:
            self._proxy.wake()

    async def __aenter__(self) -> Self:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _loopback_for(host: str) -> str:
    """Where the network front reaches the gRPC server bound on `host`."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    return "::1" if host == "::" else host


async def run_platform(
    host: str,
    port: int,
    seed: int,
    size: int,
    scenario: ScenarioSource | None = None,
    *,
    control_port: int = 0,
) -> None:
    """Serves a simulated platform until cancelled, SIGINT or SIGTERM, then stops gracefully.

    A `scenario` (a `FaultScenario`, its JSON dict, or a file, see `load_scenario`) is
    applied once the platform listens: its timeline starts then.
    """
    if isinstance(scenario, Path):
        scenario = load_scenario(scenario)  # fail before binding anything
    platform = SimulatedPlatform(generate_population(seed, size))
    bound = await platform.start(host, port, control_port=control_port)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on Windows: cancellation still stops us.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        if scenario is not None:
            await platform.apply_scenario(scenario)
        print(
            f"platform listening on {host}:{bound} (control on {host}:{platform.control_port})",
            flush=True,
        )
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await platform.stop()
