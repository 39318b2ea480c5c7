"""Composition root: builds the object graph from a config, serves it, shuts it down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from opentelemetry import metrics as metrics_api
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import NoOpTracerProvider, TracerProvider

from essc.gateway.v1 import gateway_pb2, gateway_pb2_grpc, operator_pb2, operator_pb2_grpc
from essc_gateway.clock import Clock, SystemClock
from essc_gateway.composition import Parts, Telemetry, build
from essc_gateway.config import GatewayConfig
from essc_gateway.domain.maintenance import WindowKind
from essc_gateway.evidence.checkpoints import Checkpointer
from essc_gateway.evidence.signed_note import NoteSigner
from essc_gateway.evidence.signing_key import load_signer
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.management import KeyManagement
from essc_gateway.keys.opening import open_hierarchy
from essc_gateway.keys.root import KeystoreError
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.metrics import GatewayMetrics
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.service.periodic import run_every
from essc_gateway.service.reconciler import IssueReconciler
from essc_gateway.service.replicas import HEARTBEAT_INTERVAL
from essc_gateway.store.base import StoreUnavailable
from essc_gateway.store.opening import GatewayStore, open_store
from essc_gateway.transport.certificates import ServerCertificates
from essc_gateway.transport.reflection_v1 import enable_reflection
from essc_gateway.upstream.breaker import Breakers
from essc_gateway.upstream.channel import PlatformTlsWatch, plaintext_platform_channel
from essc_gateway.upstream.grpc_platform import GrpcPlatform

log = logging.getLogger("essc_gateway")
STORE_PROBE_INTERVAL = 1.0
QUEUE_COUNT_INTERVAL = 5.0
"""Seconds between two counts of the store-and-forward queue (a gauge, not a hot path)."""
KEY_JOB_INTERVAL = 1.0
"""Seconds between two looks for key jobs to work (a rotation's or a key incident's)."""
ERASURE_JOB_INTERVAL = 5.0
"""Seconds between two looks for erasure jobs (a bank's, or the daily retention runs)."""
KEYSTORE_PROBE_INTERVAL = 2.0
"""Seconds between two looks at the root keystore (one cheap PKCS#11 lookup each)."""
GATEWAY_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
OPERATOR_SERVICE = operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].full_name
HEALTH_SERVICES = ("", GATEWAY_SERVICE, OPERATOR_SERVICE)
"""What health reports: the server as a whole and each service (all follow the store)."""
CONNECTION_AGE = (
    ("grpc.max_connection_age_ms", 30 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 60 * 1000),
)
"""A bank's connection is asked to reconnect after 30 minutes (its calls get a minute to end):
a rotated certificate or client CA applies to every connection within that, not only to new
ones, and a balancer spreads long-lived clients again after a scale-up."""
LIVENESS_SERVICE = "liveness"
"""SERVING from start until the drain, whatever the store or the HSM says: a liveness probe
asks this name, so that an outage outside the process takes replicas out of the balancer
(readiness) without restarting them all (a restart needs the HSM that may be away)."""


class Gateway:
    """The gateway server. `await start()`, then `port`; `await stop()` drains and closes."""

    def __init__(
        self,
        config: GatewayConfig,
        platform_address: str,
        clock: Clock | None = None,
        *,
        rng: random.Random | None = None,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        reuse_port: bool = False,
        background_jobs: bool = True,
    ) -> None:
        """`reuse_port`: several worker processes serve one port (SO_REUSEPORT), each with a
        Gateway over the same store; off, a port already taken is an error.
        `background_jobs`: the store-and-forward sender, the reconciler and the key jobs.
        Every replica may run them (each claims its work with a lease); off only for tests."""
        # Never the global providers: the composition root passes them in.
        self._tracer_provider = tracer_provider or NoOpTracerProvider()
        self._tracer = self._tracer_provider.get_tracer("essc_gateway")
        self._config = config
        self._platform_address = platform_address
        self._clock = clock or SystemClock()
        # Back-off jitter only; secrets come from the `secrets` module.
        self._rng = rng or random.Random()  # noqa: S311
        self.metrics = GatewayMetrics(meter_provider or metrics_api.get_meter_provider())
        self.breakers = Breakers(config.breaker, self._clock, self.metrics.breaker_changed)
        self.metrics.watch_breakers(lambda: [(b.operation, b.state) for b in self.breakers])
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._health = HealthServicer()
        self._store: GatewayStore | None = None
        self._parts: Parts | None = None
        self._platform: GrpcPlatform | None = None
        self._forwarder_task: asyncio.Task[None] | None = None
        self._reconciler_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._counter_task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._reuse_port = reuse_port
        self._background_jobs = background_jobs
        self._forward_queue_depth = 0
        self.port = 0
        self.health_port: int | None = None
        self.server_certificates: ServerCertificates | None = None
        self.keys: KeyHierarchy | None = None
        self._store_writable = True
        self._keystore_up = True
        self.platform_tls_watch: PlatformTlsWatch | None = None

    @property
    def parts(self) -> Parts:
        """The gateway's objects (`composition.build`); only once started."""
        if self._parts is None:
            raise RuntimeError("the gateway is not started")
        return self._parts

    @property
    def key_management(self) -> KeyManagement:
        return self.parts.key_management

    @property
    def reconciler(self) -> IssueReconciler:
        return self.parts.reconciler

    @property
    def outages(self) -> OutageTracker:
        return self.parts.outages

    @property
    def checkpointer(self) -> Checkpointer:
        return self.parts.checkpointer

    def _platform_channel(self) -> grpc.aio.Channel:
        tls = self._config.platform_tls
        if tls is None:
            return plaintext_platform_channel(self._platform_address)
        self.platform_tls_watch = PlatformTlsWatch(
            self._platform_address, tls, self._config.tls_reload_interval
        )
        return self.platform_tls_watch.channel

    async def start(self) -> int:
        config, clock = self._config, self._clock
        self._store = store = await self._open_store()
        # Every bank's keys unwrapped now: the request path never calls the root keystore.
        self.keys = await open_hierarchy(store, config.root_key, config.banks, clock)
        telemetry = Telemetry(self.metrics, self.breakers, self._tracer_provider, self._rng)
        signer = self._evidence_signer()  # before the channel: a bad key leaves none open
        self._parts = parts = build(
            config, store, self.keys, self._platform_channel(), signer, clock, telemetry
        )
        self._platform = parts.platform
        if self.platform_tls_watch is not None:
            self.platform_tls_watch.on_reload(parts.platform.use_channel)
        await parts.replicas.beat()  # registered before it judges which outages are orphaned
        await parts.outages.close_stale(
            frozenset(r.replica_id for r in await parts.replicas.alive())
        )
        await parts.shared_state.start()
        parts.ledger.pending.load()  # what a previous run could not append
        await parts.ledger.flush_pending()
        store.health.subscribe(self._store_health_changed)
        server = grpc.aio.server(
            options=[("grpc.so_reuseport", int(self._reuse_port)), *CONNECTION_AGE],
            interceptors=[parts.interceptor],
        )
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(parts.servicer, server)
        operator_pb2_grpc.add_OperatorServiceServicer_to_server(parts.operator_servicer, server)
        enable_reflection(
            (
                GATEWAY_SERVICE,
                OPERATOR_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            ),
            server,
        )
        self._watch(store, parts.calendar, parts.outages)
        self._start_jobs(parts)
        await self._bind(server)
        parts.interceptor.serving_at(config.host, self.port)
        self._server = server
        await server.start()
        parts.replicas.serving_at(f"{config.host}:{self.port}")
        await parts.replicas.beat()
        # Only now: a beat in flight with the address before the port was known could
        # commit after this one on another connection.
        self._heartbeat_task = asyncio.create_task(
            run_every(HEARTBEAT_INTERVAL, self._beat, "heartbeat"), name="essc-heartbeat"
        )
        for service in (*HEALTH_SERVICES, LIVENESS_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("gateway listening on %s:%d", config.host, self.port)
        log.info("evidence checkpoints verify with %s", parts.checkpointer.verifier_key)
        return self.port

    def _watch(
        self, store: GatewayStore, calendar: MaintenanceCalendar, outages: OutageTracker
    ) -> None:
        """The gauges, read at each collection from what is in memory (no I/O there)."""
        metrics, clock = self.metrics, self._clock
        store.observe_appends(metrics.ledger_appended)

        def windows() -> dict[tuple[tuple[str, str], ...], int]:
            now = clock.now()
            active = [w for w in calendar.windows(current_only=True) if w.starts_at <= now]
            return {
                (("kind", kind.value),): sum(w.kind is kind for w in active) for kind in WindowKind
            }

        metrics.watch("essc.maintenance.windows.active", windows)
        metrics.watch(
            "essc.outages.open",
            lambda: {(("operation", op),): 1 for op in outages.open_operations()},
        )
        metrics.watch(
            "essc.store.pool.connections",
            lambda: {(("state", state),): n for state, n in store.connections().items()},
        )
        metrics.watch("essc.forward.queue.depth", lambda: {(): self._forward_queue_depth})
        metrics.watch("essc.tls.certificate.expiry", self._certificate_lifetimes)
        loop = asyncio.get_running_loop()  # the gauge is read on the exporter's thread
        metrics.watch("essc.runtime.tasks", lambda: {(): len(asyncio.all_tasks(loop))})

    def _certificate_lifetimes(self) -> dict[tuple[tuple[str, str], ...], int]:
        """Seconds each certificate in use has left: the reloaded one after a rotation."""
        expiries = {
            "server": self.server_certificates.expiry if self.server_certificates else None,
            "platform-client": self.platform_tls_watch.expiry if self.platform_tls_watch else None,
        }
        now = self._clock.now()
        return {
            (("certificate", name),): int((expiry - now).total_seconds())
            for name, expiry in expiries.items()
            if expiry is not None
        }

    async def _count_forward_queue(self) -> None:
        if self._store is not None:
            self._forward_queue_depth = await self._store.forward_queue_depth()

    async def _bind(self, server: grpc.aio.Server) -> None:
        """The bank-facing port (TLS with client certificates when configured), and health:
        on a plaintext port of its own under TLS or when one is configured (probes then see
        NOT_SERVING through a drain, while the main port takes no new calls), else on the
        main port."""
        config = self._config
        address = f"{config.host}:{config.port}"
        if config.tls is None:
            self.port = server.add_insecure_port(address)
        else:
            self.server_certificates = ServerCertificates(
                config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file
            )
            self.port = server.add_secure_port(address, self.server_certificates.credentials())
        if config.tls is None and config.health_port is None:
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        else:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            self.health_port = self._health_server.add_insecure_port(
                f"{config.host}:{config.health_port or 0}"
            )
            await self._health_server.start()

    async def _open_store(self) -> GatewayStore:
        config = self._config
        return await open_store(
            config.database,
            config.synchronous,
            tracer=self._tracer,
            evidence_hash=config.evidence.tree_hash,
        )

    def _evidence_signer(self) -> NoteSigner:
        """The checkpoint signer. The default key is made on first start (a development
        run); a configured one must exist already, readable by the gateway's user only."""
        config = self._config
        return load_signer(
            config.evidence_key_file,
            config.evidence.origin,
            create=config.evidence.key_file is None,
        )

    def _start_jobs(self, parts: Parts) -> None:
        config = self._config
        if self._background_jobs:  # every replica: they claim their work
            self._forwarder_task = asyncio.create_task(
                parts.forwarder.run(config.forward_interval), name="essc-forwarder"
            )
            self._reconciler_task = asyncio.create_task(
                parts.reconciler.run(config.reconcile_interval), name="essc-reconciler"
            )
        self._refresh_task = asyncio.create_task(
            parts.shared_state.run(config.shared_state_refresh), name="essc-shared-state"
        )
        self._counter_task = asyncio.create_task(parts.counter.run(5.0), name="essc-request-counts")
        self._probe_task = asyncio.create_task(
            run_every(STORE_PROBE_INTERVAL, self._probe_store, "store probe"), name="essc-probe"
        )
        side_jobs: dict[str, Coroutine[Any, Any, None]] = {
            "essc-checkpoints": parts.checkpointer.run(config.evidence.checkpoint_interval),
            "essc-queue-depth": run_every(
                QUEUE_COUNT_INTERVAL, self._count_forward_queue, "queue depth"
            ),
            "essc-keystore-probe": run_every(
                KEYSTORE_PROBE_INTERVAL, self._probe_keystore, "keystore probe"
            ),
            "essc-key-usage": run_every(
                config.key_usage_interval.total_seconds(),
                parts.key_management.usage.report,
                "key usage",
            ),
        }
        if self._background_jobs:  # every replica: a job's lease picks one
            side_jobs["essc-key-jobs"] = parts.key_management.mover.run(KEY_JOB_INTERVAL)
            side_jobs["essc-erasure-jobs"] = parts.erasure_jobs.run(ERASURE_JOB_INTERVAL)
        if self.platform_tls_watch is not None:
            side_jobs["essc-platform-tls"] = self.platform_tls_watch.run()
        for name, job in side_jobs.items():
            self._side_tasks.add(asyncio.create_task(job, name=name))

    async def _beat(self) -> None:
        """The heartbeat; this replica's counts of open outages for the others; the retry
        budget's floor split between the live replicas."""
        parts = self.parts
        await parts.replicas.beat()
        await parts.outages.flush()
        alive = await parts.replicas.alive()
        parts.retry_budget.share_with(len(alive))
        # Outages whose holders all died end at their last failure (not only at a start).
        await parts.outages.close_stale(frozenset(r.replica_id for r in alive))

    def _store_health_changed(self, writable: bool) -> None:
        """Health follows the store: NOT_SERVING while it cannot write, so that a balancer
        sends traffic elsewhere; once it writes again, the held liability records go in."""
        self._store_writable = writable

        async def apply() -> None:
            await self._apply_health()
            if writable and self._parts is not None:
                await self._parts.ledger.flush_pending()

        task = asyncio.get_running_loop().create_task(apply(), name="essc-store-health")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _apply_health(self) -> None:
        """SERVING while the store writes and the root keystore answers."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self._store_writable and self._keystore_up
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in HEALTH_SERVICES:
            await self._health.set(service, status)

    async def _probe_keystore(self) -> None:
        """The root keystore's look: requests keep the keys they hold in memory, but a
        replica whose HSM does not answer cannot take a rotation or restart: NOT_SERVING
        until it answers again (a lost session is logged in again by the probe itself)."""
        if self.keys is None:
            return
        try:
            await self.keys.root.probe()
            up = True
        except KeystoreError as error:
            if self._keystore_up:
                log.error("root keystore not answering: %s", error)
            up = False
        if up != self._keystore_up:
            self._keystore_up = up
            if up:
                log.info("root keystore answers again")
            await self._apply_health()

    async def _probe_store(self) -> None:
        """While the store cannot write, one small write a round tells when it can again
        (requests that keep failing may be few or none)."""
        if self._store is not None and not self._store.health.writable:
            with contextlib.suppress(StoreUnavailable):
                await self._store.probe_write()
        elif self._parts is not None and self._parts.ledger.pending:
            await self._parts.ledger.flush_pending()  # held records still waiting: try again

    async def settle_ledger(self) -> None:
        """Waits until liability records already handed in are committed (a refusal inside
        an announced window is answered before its record commits)."""
        if self._parts is not None:
            await self._parts.ledger.drain()

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking calls, lets running ones finish within `grace`, closes resources.
        Calling it again does nothing."""
        await self._health.enter_graceful_shutdown()
        grace = self._config.shutdown_grace if grace is None else grace
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        # After the server: a forward in flight finishes or stays queued, never half-done.
        tasks = (
            self._forwarder_task,
            self._reconciler_task,
            self._counter_task,
            self._refresh_task,
            self._heartbeat_task,
            self._probe_task,
            *self._side_tasks,
        )
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._forwarder_task = self._reconciler_task = self._probe_task = None
        self._counter_task = self._refresh_task = self._heartbeat_task = None
        # A second stop finds the store closed: nothing left to flush.
        parts = self._parts if self._store is not None else None
        if parts is not None:
            await parts.incidents.close()
        await self.settle_ledger()
        if parts is not None:
            await parts.counter.flush()
            await parts.outages.flush()
            with contextlib.suppress(StoreUnavailable):
                await parts.replicas.leave()
        if self._health_server is not None:
            await self._health_server.stop(0)
            self._health_server = None
        if self.platform_tls_watch is not None:
            await self.platform_tls_watch.close()
        if self._platform is not None:
            await self._platform.close()
            self._platform = None
        if self.keys is not None:
            await self.keys.close()
            self.keys = None
        if self._store is not None:
            await self._store.close()
            self._store = None
