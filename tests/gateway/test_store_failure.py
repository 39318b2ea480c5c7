"""When the gateway's store cannot write (issue 10, defect 11; on PostgreSQL, the database
going away, issue 11): UNAVAILABLE with a stable
reason and the outcome, health NOT_SERVING until writes succeed again, no restart needed,
and the failure still evidenced in the ledger once the store is back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.simplatform import Population
from essc_gateway.simplatform.faults import ConnectionFailure, ConnectionMode
from essc_gateway.simplatform.network import PlatformProxy
from essc_gateway.store.location import PostgresDatabase, StoreLocation
from essc_gateway.store.sqlite import SqliteStore
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.databases import ADMIN_DSN, BACKENDS, new_postgres_schema
from tests.gateway.flows import (
    Rich,
    adult,
    rich,
    ts,
    verified_issue_request,
)
from tests.polling import eventually
from tests.sql import fetch


@dataclass
class DatabaseLink:
    """The network between the gateway and PostgreSQL: a TCP proxy that can be cut (every
    connection reset, new ones refused), as when the server restarts or fails over."""

    cut: bool = False
    proxy: PlatformProxy | None = None

    def failure(self) -> ConnectionFailure | None:
        return ConnectionFailure(ConnectionMode.REFUSE) if self.cut else None


@pytest.fixture
async def link() -> AsyncIterator[DatabaseLink]:
    link = DatabaseLink()
    target = urlsplit(ADMIN_DSN)
    link.proxy = PlatformProxy((target.hostname or "127.0.0.1", target.port or 5432), link.failure)
    await link.proxy.start("127.0.0.1", 0)
    yield link
    await link.proxy.close()


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path, link: DatabaseLink) -> StoreLocation:
    """Overrides the shared fixture: on PostgreSQL the gateway reaches it through `link`."""
    if request.param == "sqlite":
        return tmp_path / "gateway.db"
    schema = new_postgres_schema(request.getfixturevalue("postgres_run_database"))
    assert link.proxy is not None
    through = urlsplit(schema.dsn)._replace(netloc=f"postgres@127.0.0.1:{link.proxy.port}")
    return PostgresDatabase(urlunsplit(through))


async def _cannot_write(gw: GatewayUnderTest, link: DatabaseLink, on: bool) -> None:
    """SQLite: as a file system remounted read-only after I/O errors (set on the store's own
    writer connection, in its thread). PostgreSQL: the database goes away (the link is cut)."""
    store = gw.gateway._store
    if isinstance(store, SqliteStore):
        writer = store._writer
        await asyncio.get_running_loop().run_in_executor(
            writer._thread, writer._db.execute, f"PRAGMA query_only={int(on)}"
        )
        return
    assert link.proxy is not None
    link.cut = on
    await link.proxy.sync()


async def _health(gw: GatewayUnderTest) -> int:
    """The server's status, once its services all agree with it."""
    stub = health_pb2_grpc.HealthStub(gw.channel)
    statuses = {
        int((await stub.Check(health_pb2.HealthCheckRequest(service=service))).status)
        for service in ("", "essc.gateway.v1.GatewayService", "essc.gateway.v1.OperatorService")
    }
    return statuses.pop() if len(statuses) == 1 else -1


async def test_a_store_that_cannot_write_is_unavailable_evidenced_and_recovers(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, link: DatabaseLink
) -> None:
    person = adult(population, clock.now().date())
    request = await verified_issue_request(gw, person, gw.a, clock.now())
    await _cannot_write(gw, link, True)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Issue(request, metadata=gw.a)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.reason == "STORE_UNAVAILABLE"
    assert error.metadata["outcome"] == "NOT_SENT"  # nothing happened: retry freely
    assert error.retry_seconds is not None
    held = error.metadata["ledger_request_id"]

    async def not_serving() -> bool:
        return await _health(gw) == health_pb2.HealthCheckResponse.NOT_SERVING

    await eventually(not_serving)

    await _cannot_write(gw, link, False)  # no restart: the gateway finds out by itself

    async def serving() -> bool:
        return await _health(gw) == health_pb2.HealthCheckResponse.SERVING

    await eventually(serving)
    now = clock.now()

    async def evidenced() -> bool:
        report = await gw.operator.GetLiabilityReport(
            opb.GetLiabilityReportRequest(
                since=ts(now - timedelta(hours=1)),
                until=ts(now + timedelta(hours=1)),
                format=opb.REPORT_FORMAT_JSON,
            ),
            metadata=gw.ops,
        )
        return held in {r["request_id"] for r in json.loads(report.body)["records"]}

    await eventually(evidenced)
    ledger = await gw.operator.VerifyLedger(opb.VerifyLedgerRequest(), metadata=gw.ops)
    assert ledger.intact
    issued = await gw.stub.Issue(request, metadata=gw.a)
    assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED


async def test_a_store_outage_under_load_loses_nothing_acknowledged_and_settles_every_key(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    link: DatabaseLink,
    database: StoreLocation,
) -> None:
    # Issue 11: the database goes away under load and comes back. Every issuance the bank
    # was told of exists once, and every key it was not told of settles (the reconciler).
    today = clock.now().date()
    people = [adult(population, today, skip=n) for n in range(12)]
    requests = []
    for person in people:
        requests.append(await verified_issue_request(gw, person, gw.a, clock.now()))
    acknowledged: dict[str, str] = {}
    cut = asyncio.Event()  # the store is away from here on, for a second

    retryable = (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    refused: list[Rich] = []

    async def bank(request: pb.IssueRequest) -> None:
        for _ in range(200):  # as a bank's client: the same request again on a retryable
            try:
                reply = await gw.stub.Issue(request, metadata=gw.a, timeout=3)
            except grpc.aio.AioRpcError as error:
                refused.append(rich(error))
                if error.code() not in retryable:
                    raise
                # The test's clock moves only when told: let the retry delay pass on it too
                # (leases of requests cut off by the outage run out on it).
                clock.advance(timedelta(milliseconds=100))
                await asyncio.sleep(0.1)
                continue
            acknowledged[request.idempotency_key] = reply.card.essc_id
            return
        raise AssertionError("never acknowledged")

    async def outage() -> None:
        await _cannot_write(gw, link, True)
        cut.set()
        await asyncio.sleep(1.0)
        await _cannot_write(gw, link, False)

    async def during_the_outage(request: pb.IssueRequest) -> None:
        await cut.wait()
        await bank(request)

    # A third issued before, the rest sent while the store is away and retried until back.
    await asyncio.gather(*(bank(r) for r in requests[:4]))
    await asyncio.gather(outage(), *(during_the_outage(r) for r in requests[4:]))
    assert len(acknowledged) == len(requests)
    assert "STORE_UNAVAILABLE" in {r.reason for r in refused}  # the outage met requests
    assert {r.reason for r in refused} <= {
        "STORE_UNAVAILABLE",
        "REQUEST_IN_PROGRESS",
        "RATE_LIMITED",
    }

    async def settled() -> bool:
        clock.advance(timedelta(seconds=5))  # past every lease and the settling grace
        await gw.gateway.reconciler.reconcile_once()
        rows = await fetch(database, "SELECT state FROM issue_attempts")
        return {row["state"] for row in rows} == {"COMPLETED"}

    await eventually(settled, within=30)
    attempts = await fetch(database, "SELECT idempotency_key, essc_id FROM issue_attempts")
    assert {row["idempotency_key"]: row["essc_id"] for row in attempts} == acknowledged
    cards = await fetch(database, "SELECT essc_id FROM cards")
    assert sorted(row["essc_id"] for row in cards) == sorted(acknowledged.values())


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_finished_issue_is_replayed_while_the_store_reads_but_cannot_write(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, link: DatabaseLink
) -> None:
    # Read-only file system: a retry of a finished Issue still gets its card, never a
    # false NOT_SENT (its claim cannot be written, its earlier attempt can be read).
    person = adult(population, clock.now().date())
    request = await verified_issue_request(gw, person, gw.a, clock.now())
    issued = await gw.stub.Issue(request, metadata=gw.a)
    await _cannot_write(gw, link, True)
    replayed = await gw.stub.Issue(request, metadata=gw.a)
    await _cannot_write(gw, link, False)
    assert replayed.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert replayed.card.essc_id == issued.card.essc_id
