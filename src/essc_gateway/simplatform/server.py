"""`SimulatedPlatform`: the platform's gRPC server, with call counts and injected latency."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.clock import Clock, SystemClock
from essc_gateway.simplatform.faults import FaultPlan
from essc_gateway.simplatform.population import Population, generate_population
from essc_gateway.simplatform.servicers import (
    AuthServicer,
    CardServicer,
    ControlServicer,
    IdentityServicer,
    RecordsServicer,
)
from essc_gateway.simplatform.state import PlatformState

PLATFORM_PREFIX = "/essc.platform.v1."
CONTROL_PREFIX = "/essc.platform.v1.ControlService/"
SERVICE_NAMES = tuple(
    f"essc.platform.v1.{name}"
    for name in (
        "IdentityService",
        "CardService",
        "AuthService",
        "RecordsService",
        "ControlService",
    )
)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - compared, not bound

Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class PlatformInterceptor(grpc.aio.ServerInterceptor):
    """Counts calls per full method name and applies the fault plan before the handler.

    ControlService (the test surface) and health checks are neither counted nor delayed.
    """

    def __init__(self, faults: FaultPlan, counts: Counter[str]) -> None:
        self._faults = faults
        self._counts = counts

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if (
            handler is None
            or handler.unary_unary is None
            or not method.startswith(PLATFORM_PREFIX)
            or method.startswith(CONTROL_PREFIX)
        ):
            return handler
        # The servicers' methods are coroutines: grpc.aio awaits what they return.
        inner: Handler = handler.unary_unary  # type: ignore[assignment]
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method, inner),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, inner: Handler) -> Handler:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self._counts[method] += 1
            plan = self._faults.plan_call(method)
            if plan.delay > 0:
                await asyncio.sleep(plan.delay)
            return await inner(request, context)

        return handle


class SimulatedPlatform:
    """The national platform, simulated behind its real gRPC contract.

    Deterministic by default: the random source is seeded from the population's seed.

    Usage::

        async with SimulatedPlatform(generate_population()) as platform:
            channel = grpc.aio.insecure_channel(platform.address)
    """

    def __init__(
        self,
        population: Population,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        sms_code_ttl: timedelta = timedelta(minutes=5),
        sms_max_attempts: int = 3,
    ) -> None:
        self.population = population
        self.clock: Clock = clock or SystemClock()
        # A simulator wants reproducible draws, not secret ones.
        rng = rng or random.Random(population.seed or 0)  # noqa: S311
        # Two streams: latency jitter must not shift the state's draws (essc ids, codes).
        self.faults = FaultPlan(random.Random(rng.getrandbits(64)))  # noqa: S311
        self.state = PlatformState(
            population,
            clock=self.clock,
            rng=rng,
            sms_code_ttl=sms_code_ttl,
            sms_max_attempts=sms_max_attempts,
        )
        self.call_counts: Counter[str] = Counter()
        self._health: HealthServicer | None = None
        self._server: grpc.aio.Server | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Binds and starts the server; returns the bound port (useful with port 0)."""
        if self._server is not None:
            raise RuntimeError("platform already started")
        server = grpc.aio.server(interceptors=[PlatformInterceptor(self.faults, self.call_counts)])
        pb_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(self.state), server)
        pb_grpc.add_CardServiceServicer_to_server(CardServicer(self.state), server)
        pb_grpc.add_AuthServiceServicer_to_server(AuthServicer(self.state), server)
        pb_grpc.add_RecordsServiceServicer_to_server(RecordsServicer(self.state), server)
        pb_grpc.add_ControlServiceServicer_to_server(
            ControlServicer(self.state, self.faults, self.call_counts), server
        )
        # A fresh one per start: after a graceful shutdown a health servicer stays NOT_SERVING.
        self._health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        bound = server.add_insecure_port(f"{bind_host}:{port}")
        if bound == 0:
            raise RuntimeError("could not bind the platform's port")
        for name in SERVICE_NAMES:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        self._server = server
        self._host = "127.0.0.1" if host in _WILDCARD_HOSTS else bind_host
        self._port = bound
        return bound

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("platform not started")
        return self._port

    @property
    def address(self) -> str:
        """Where a client connects, e.g. "127.0.0.1:50061"."""
        return f"{self._host}:{self.port}"

    async def stop(self, grace: float | None = 1.0) -> None:
        """Reports NOT_SERVING, then lets calls in flight finish for up to `grace` seconds."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await server.stop(grace)

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


async def run_platform(host: str, port: int, seed: int, size: int) -> None:
    """Serves a simulated platform until cancelled, SIGINT or SIGTERM, then stops gracefully."""
    platform = SimulatedPlatform(generate_population(seed, size))
    bound = await platform.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on Windows: cancellation still stops us.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        print(f"platform listening on {host}:{bound}", flush=True)
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await platform.stop()
