"""Shared fixtures: a real simulated platform and a real gateway on 127.0.0.1, port 0."""

from __future__ import annotations

import contextlib
import hashlib
import random
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import grpc
import pytest
from hypothesis import settings
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from essc.gateway.v1 import gateway_pb2_grpc, operator_pb2_grpc
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.access.roles import OperatorRole
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig, GatewayConfig, OperatorConfig, RootKeyFile
from essc_gateway.domain.models import Factor, Scenario
from essc_gateway.simplatform import Population, SimulatedPlatform, generate_population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from essc_gateway.tracing.redaction import RedactingSpanProcessor
from essc_gateway.transport.banks import token_digest
from essc_gateway.upstream.retrying import RetrySettings
from tests.databases import (  # the fixtures are shared from here
    BACKENDS,
    new_postgres_schema,
    postgres_location,  # noqa: F401
    postgres_run_database,  # noqa: F401
)

# Same examples on every run: the suite must not turn red by chance on a busy machine.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.load_profile("deterministic")

BANK_A_TOKEN = "token-of-bank-a-" + "x" * 16
BANK_B_TOKEN = "token-of-bank-b-" + "y" * 16
OPERATOR_TOKEN = "token-of-the-operator-" + "z" * 16
POPULATION_SEED = 20240320


@pytest.fixture(scope="session")
def population() -> Population:
    return generate_population(POPULATION_SEED, 400)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(follow_real_time=True)


@pytest.fixture
def today(clock: FakeClock) -> date:
    return clock.now().date()


@pytest.fixture
async def platform(population: Population, clock: FakeClock) -> AsyncIterator[SimulatedPlatform]:
    simulated = SimulatedPlatform(population, clock=clock, rng=random.Random(7))
    await simulated.start("127.0.0.1", 0)
    yield simulated
    await simulated.stop(0)


def root_key_path(database: StoreLocation) -> Path:
    """One root key per store, as replicas sharing a store share their keystore: beside a
    SQLite file, or in the temporary directory named after the PostgreSQL database."""
    if isinstance(database, Path):
        return database.parent / "root.key"
    digest = hashlib.sha256(database.dsn.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"essc-test-root-{digest}.key"


def make_config(database: StoreLocation, **overrides: object) -> GatewayConfig:
    banks = (
        # Bank A opted issuance into store-and-forward during maintenance windows.
        BankConfig("bank-a", token_sha256=token_digest(BANK_A_TOKEN), store_and_forward=True),
        # Bank B asks for a biometric on top of the password to query records (A8).
        BankConfig(
            "bank-b",
            token_sha256=token_digest(BANK_B_TOKEN),
            factors={Scenario.QUERY_RECORDS: frozenset({Factor.PASSWORD, Factor.BIOMETRIC})},
        ),
    )
    settings: dict[str, object] = {
        # Hangs and lost answers cost one attempt timeout each: keep them short in tests.
        # The gateway answers 100 ms before a caller's deadline: room for a busy machine.
        "retry": RetrySettings(attempt_timeout=0.5, deadline_margin=0.1),
        "root_key": RootKeyFile(root_key_path(database), create=True),
        "banks": banks,
        # The tests' operator holds every role; tests/access checks each role on its own.
        "operators": (
            OperatorConfig(
                "ops", token_sha256=token_digest(OPERATOR_TOKEN), roles=frozenset(OperatorRole)
            ),
        ),
        "forward_interval": 0.05,
        "port": 0,
        "database": database,
        # Held liability records: beside a SQLite file, in a directory of the test's own
        # for PostgreSQL (never the working directory's var/).
        "state_directory": (
            database.parent if isinstance(database, Path) else Path(tempfile.mkdtemp())
        ),
    }
    settings.update(overrides)
    return GatewayConfig(**settings)  # type: ignore[arg-type]


@dataclass
class GatewayUnderTest:
    gateway: Gateway
    config: GatewayConfig
    channel: grpc.aio.Channel
    stub: gateway_pb2_grpc.GatewayServiceAsyncStub
    control: platform_pb2_grpc.ControlServiceAsyncStub
    platform_channel: grpc.aio.Channel
    operator: operator_pb2_grpc.OperatorServiceAsyncStub
    metrics: InMemoryMetricReader
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    a: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {BANK_A_TOKEN}"),)
    b: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {BANK_B_TOKEN}"),)
    ops: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """The gateway's store: every test that uses it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "gateway.db"
    return new_postgres_schema(request.getfixturevalue("postgres_run_database"))


@pytest.fixture
async def gw(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> AsyncIterator[GatewayUnderTest]:
    async with running_gateway(platform, clock, make_config(database)) as running:
        yield running


@contextlib.asynccontextmanager
async def running_gateway(
    platform: SimulatedPlatform,
    clock: FakeClock,
    config: GatewayConfig,
    *,
    background_jobs: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[GatewayUnderTest]:
    """A gateway of `config` on the simulated platform, with in-memory metrics and spans
    (the spans go to `tracer_provider` instead when one is given)."""
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    if tracer_provider is None:
        tracer_provider = TracerProvider()
        # As in production: every span passes the redacting processor on its way out.
        tracer_provider.add_span_processor(RedactingSpanProcessor(SimpleSpanProcessor(spans)))
    gateway = Gateway(
        config,
        platform.address,
        clock,
        meter_provider=MeterProvider(metric_readers=[reader]),
        tracer_provider=tracer_provider,
        background_jobs=background_jobs,
    )
    port = await gateway.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    platform_channel = grpc.aio.insecure_channel(platform.control_address)
    try:
        yield GatewayUnderTest(
            gateway=gateway,
            config=config,
            channel=channel,
            stub=gateway_pb2_grpc.GatewayServiceStub(channel),
            control=platform_pb2_grpc.ControlServiceStub(platform_channel),
            platform_channel=platform_channel,
            operator=operator_pb2_grpc.OperatorServiceStub(channel),
            metrics=reader,
            spans=spans,
        )
    finally:
        await channel.close()
        await platform_channel.close()
        await gateway.stop(0)
        tracer_provider.shutdown()
