"""Two replicas as separate processes, each in a working directory of its own with nothing
shared but the PostgreSQL database, behind real nginx that terminates the banks' mTLS
(issue 11). A bank drives Verify and Issue through nginx; one replica is killed -9 mid-load;
afterwards every acknowledged issuance exists exactly once and the ledger verifies. A window
and a forced circuit set through one replica hold on the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc, operator_pb2_grpc
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.bench.processes import free_port, free_ports_in_a_row
from essc_gateway.dev_pki import make_pki
from essc_gateway.local_cluster import (
    NGINX_TEMPLATE,
    ClusterSettings,
    LocalCluster,
    render_nginx_config,
)
from essc_gateway.simplatform import Person, generate_population
from essc_gateway.store.location import PostgresDatabase
from tests.gateway.flows import consent, identity, issue_request, live_sample, rich, ts
from tests.polling import eventually
from tests.sql import fetch

SEED, SIZE = 20240320, 300
APPLICANTS = 24
KILL_AFTER = 8  # acknowledged issuances before replica 0 is killed


@pytest.fixture
async def cluster(
    tmp_path: Path, postgres_location: PostgresDatabase
) -> AsyncIterator[LocalCluster]:
    listen = free_port()
    first = free_ports_in_a_row(2)  # replicas take consecutive ports
    running = LocalCluster(
        ClusterSettings(
            directory=tmp_path / "cluster",
            database=postgres_location,
            replicas=2,
            listen_port=listen,
            first_replica_port=first,
            population_seed=SEED,
            population_size=SIZE,
        )
    )
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


def _bank_channel(cluster: LocalCluster, name: str) -> grpc.aio.Channel:
    assert cluster.ca is not None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=cluster.ca.read_bytes(),
        private_key=cluster.clients[name].key.read_bytes(),
        certificate_chain=cluster.clients[name].cert.read_bytes(),
    )
    return grpc.aio.secure_channel(
        cluster.address, credentials, (("grpc.ssl_target_name_override", "localhost"),)
    )


def _operator_metadata(cluster: LocalCluster) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {cluster.tokens['operator dev-operator']}"),)


def _adults(count: int) -> list[Person]:
    today = datetime.now(UTC).date()
    population = generate_population(SEED, SIZE)
    return population.samples(today, count)


async def _retrying(call, seen: list[str]):  # type: ignore[no-untyped-def]
    """As a bank's client does: the same request again on UNAVAILABLE, or ABORTED (the key
    is held by a request of a replica that died: its lease runs out, then it settles)."""
    for _ in range(120):
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            seen.append(f"{error.code().name}:{rich(error).reason}")
            retryable = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)
            if error.code() not in retryable:
                raise
            await asyncio.sleep(min(rich(error).retry_seconds or 0.25, 1.0))
    raise AssertionError("never acknowledged")


async def _issue_until_acknowledged(
    stub: gateway_pb2_grpc.GatewayServiceStub, person: Person, key: str, seen: list[str]
) -> pb.IssueResponse:
    verify = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    verified = await _retrying(lambda: stub.Verify(verify, timeout=10), seen)
    issue = issue_request(person, verified.verification_token, consent(datetime.now(UTC)), key)
    reply: pb.IssueResponse = await _retrying(lambda: stub.Issue(issue, timeout=10), seen)
    return reply


async def test_two_replicas_behind_nginx_survive_a_kill_and_act_as_one(
    cluster: LocalCluster,
) -> None:
    ops = _operator_metadata(cluster)
    replica_channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{cluster.replica_port(i)}") for i in range(2)
    ]
    first_ops, second_ops = (
        operator_pb2_grpc.OperatorServiceStub(channel) for channel in replica_channels
    )
    async with _bank_channel(cluster, "demo-bank") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        # A forced circuit and a window set through replica 0 hold on replica 1.
        now = datetime.now(UTC)
        await first_ops.ForceCircuitOpen(
            opb.ForceCircuitOpenRequest(
                operation="GetQualifications", until=ts(now + timedelta(hours=1))
            ),
            metadata=ops,
        )

        async def forced_on_the_other() -> bool:
            listed = await second_ops.ListCircuits(opb.ListCircuitsRequest(), metadata=ops)
            return any(
                c.operation == "GetQualifications" and c.state == "OPEN" for c in listed.circuits
            )

        await eventually(forced_on_the_other, within=1.0)
        window = await first_ops.AnnounceMaintenance(
            opb.AnnounceMaintenanceRequest(
                kind=opb.MAINTENANCE_KIND_BANK,
                starts_at=ts(now + timedelta(hours=2)),
                ends_at=ts(now + timedelta(hours=3)),
                rpcs=["Query"],
                reason="core banking upgrade",
                channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
                notice="https://bank.example/notices/maintenance",
            ),
            metadata=ops,
        )

        async def window_on_the_other() -> bool:
            listed = await second_ops.ListMaintenance(opb.ListMaintenanceRequest(), metadata=ops)
            return window.window.window_id in {w.window_id for w in listed.windows}

        await eventually(window_on_the_other, within=1.0)

        # Rich errors (trailers) and the caller's identity pass through nginx.
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Verify(pb.VerifyRequest(), timeout=10)
        assert rich(bad.value).reason == "INVALID_FIELD"

        # Verify and Issue through nginx; replica 0 dies -9 mid-load.
        people = _adults(APPLICANTS)
        keys = [uuid.uuid4().hex for _ in people]
        acknowledged: dict[str, str] = {}
        killed = asyncio.Event()
        seen: list[str] = []

        async def applicant(n: int) -> None:
            reply = await _issue_until_acknowledged(stub, people[n], keys[n], seen)
            acknowledged[keys[n]] = reply.card.essc_id
            if len(acknowledged) >= KILL_AFTER and not killed.is_set():
                killed.set()
                cluster.kill_replica(0)

        await asyncio.gather(*(applicant(n) for n in range(len(people))))
        assert killed.is_set()
        assert await cluster.processes[0].wait() == -9  # it died mid-load, no clean stop
        assert len(acknowledged) == len(people), seen

        ledger = await operator_pb2_grpc.OperatorServiceStub(replica_channels[1]).VerifyLedger(
            opb.VerifyLedgerRequest(), metadata=ops
        )
        assert ledger.intact

    for channel in replica_channels:
        await channel.close()
    database = cluster.settings.database
    cards = await fetch(database, "SELECT essc_id, holder_token FROM cards")
    by_id = {row["essc_id"] for row in cards}
    assert set(acknowledged.values()) <= by_id
    assert len(cards) == len(by_id) == len({row["holder_token"] for row in cards})  # once each
    attempts = await fetch(
        database, "SELECT idempotency_key, essc_id FROM issue_attempts WHERE state = 'COMPLETED'"
    )
    assert {row["idempotency_key"]: row["essc_id"] for row in attempts} == acknowledged


async def test_the_shipped_nginx_configuration_passes_nginx_t(tmp_path: Path) -> None:
    ca, server, _ = make_pki(tmp_path, ())
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_nginx_config(
            NGINX_TEMPLATE,
            prefix=prefix,
            listen="127.0.0.1:8443",
            upstream_servers="        server 127.0.0.1:50071;\n        server 127.0.0.1:50072;",
            server=server,
            client_ca=ca,
        )
    )
    check = await asyncio.create_subprocess_exec(
        "nginx", "-t", "-p", str(prefix), "-c", str(conf), stderr=asyncio.subprocess.PIPE
    )
    _, output = await check.communicate()
    assert check.returncode == 0, output.decode()
    assert "syntax is ok" in output.decode()
