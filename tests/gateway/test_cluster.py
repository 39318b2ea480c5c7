"""Replicas sharing one store behave as one gateway (issue 11): what an operator sets through
one replica holds on the other within a second, one outage per platform operation for the
cluster, replicas listed with their heartbeats. Two gateways in this process on one
database, on SQLite and on PostgreSQL; the multi-process test behind nginx is elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc, operator_pb2_grpc
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.app import Gateway
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import adult, identity, live_sample, rich, ts, verify
from tests.gateway.test_maintenance import announce
from tests.gateway.test_resilience import set_faults
from tests.polling import eventually
from tests.sql import fetch, liability_records

WITHIN = 1.0  # the bound for a change to hold on every replica


@dataclass
class Replica:
    gateway: Gateway
    stub: gateway_pb2_grpc.GatewayServiceStub
    operator: operator_pb2_grpc.OperatorServiceStub


@pytest.fixture
async def other(
    gw: GatewayUnderTest, platform: SimulatedPlatform, clock: FakeClock
) -> AsyncIterator[Replica]:
    """A second replica: same configuration and keys, same database, a port of its own."""
    gateway = Gateway(gw.config, platform.address, clock)
    port = await gateway.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Replica(
        gateway,
        gateway_pb2_grpc.GatewayServiceStub(channel),
        operator_pb2_grpc.OperatorServiceStub(channel),
    )
    await channel.close()
    await gateway.stop(0)


def _verify_request(person) -> pb.VerifyRequest:  # type: ignore[no-untyped-def]
    return pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )


async def test_a_window_announced_through_one_replica_holds_on_the_other(
    gw: GatewayUnderTest, other: Replica, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    now = clock.now()
    await announce(gw, now - timedelta(seconds=1), now + timedelta(hours=1), ("Verify",))

    async def refused_by_the_other() -> bool:
        try:
            await other.stub.Verify(_verify_request(person), metadata=gw.a)
        except grpc.aio.AioRpcError as error:
            return rich(error).reason == "MAINTENANCE_WINDOW"
        return False

    await eventually(refused_by_the_other, within=WITHIN)


async def test_a_circuit_forced_through_one_replica_holds_on_the_other(
    gw: GatewayUnderTest, other: Replica, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    await gw.operator.ForceCircuitOpen(
        opb.ForceCircuitOpenRequest(
            operation="CheckRealName", until=ts(clock.now() + timedelta(hours=1))
        ),
        metadata=gw.ops,
    )

    async def open_on_the_other() -> bool:
        circuits = await other.operator.ListCircuits(opb.ListCircuitsRequest(), metadata=gw.ops)
        return any(c.operation == "CheckRealName" and c.state == "OPEN" for c in circuits.circuits)

    await eventually(open_on_the_other, within=WITHIN)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await other.stub.Verify(_verify_request(person), metadata=gw.a)
    assert rich(raised.value).reason == "PLATFORM_CIRCUIT_OPEN"
    # Released through the other replica: the first one probes the platform again.
    await other.operator.ReleaseCircuit(
        opb.ReleaseCircuitRequest(operation="CheckRealName"), metadata=gw.ops
    )

    async def closed_on_the_first() -> bool:
        circuits = await gw.operator.ListCircuits(opb.ListCircuitsRequest(), metadata=gw.ops)
        return all(c.state != "OPEN" for c in circuits.circuits)

    await eventually(closed_on_the_first, within=WITHIN)
    assert (await verify(gw, person, gw.a)).verification_token


async def test_an_incident_declared_through_one_replica_is_known_to_the_other(
    gw: GatewayUnderTest, other: Replica, clock: FakeClock
) -> None:
    now = clock.now()
    declared = await gw.operator.DeclareIncident(
        opb.DeclareIncidentRequest(
            kind=opb.INCIDENT_KIND_TYPHOON,
            starts_at=ts(now - timedelta(hours=1)),
            ends_at=ts(now + timedelta(hours=1)),
            description="typhoon over the data centre",
        ),
        metadata=gw.ops,
    )

    async def known_to_the_other() -> bool:
        listed = await other.operator.ListIncidents(opb.ListIncidentsRequest(), metadata=gw.ops)
        return declared.incident.incident_id in {i.incident_id for i in listed.incidents}

    await eventually(known_to_the_other, within=WITHIN)


async def test_one_outage_per_operation_for_the_cluster_and_a_restart_keeps_it_open(
    gw: GatewayUnderTest,
    other: Replica,
    platform: SimulatedPlatform,
    population: Population,
    clock: FakeClock,
    database: StoreLocation,
) -> None:
    await set_faults(
        gw, {"method": "/essc.platform.v1.IdentityService/CheckRealName", "outage": {}}
    )
    person = adult(population, clock.now().date())
    for stub in (gw.stub, other.stub) * 3:
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Verify(_verify_request(person), metadata=gw.a, timeout=2)
    outages = await fetch(database, "SELECT * FROM outages WHERE scope = 'CheckRealName'")
    assert len(outages) == 1  # both replicas joined the one outage
    assert outages[0]["ended_at"] is None
    # A third replica starting now must not close what live replicas hold.
    third = Gateway(gw.config, platform.address, clock)
    await third.start()
    await third.stop(0)
    [still] = await fetch(database, "SELECT ended_at FROM outages WHERE scope = 'CheckRealName'")
    assert still["ended_at"] is None
    # Every record of the outage, whichever replica wrote it, names it with one clause.
    await gw.gateway.settle_ledger()
    await other.gateway.settle_ledger()
    records = [r for r in await liability_records(database) if r["outage_id"] is not None]
    assert records
    assert {(r["clause"], r["outage_id"]) for r in records} == {
        (outages[0]["clause"], outages[0]["outage_id"])
    }


async def test_replicas_are_listed_with_their_heartbeats(
    gw: GatewayUnderTest, other: Replica
) -> None:
    listed = await gw.operator.ListReplicas(opb.ListReplicasRequest(), metadata=gw.ops)
    assert len(listed.replicas) == 2
    assert all(r.alive for r in listed.replicas)
    assert {r.address for r in listed.replicas} == {
        f"127.0.0.1:{gw.gateway.port}",
        f"127.0.0.1:{other.gateway.port}",
    }
    await other.gateway.stop(0)  # a clean stop leaves the list
    listed = await gw.operator.ListReplicas(opb.ListReplicasRequest(), metadata=gw.ops)
    assert [r.address for r in listed.replicas] == [f"127.0.0.1:{gw.gateway.port}"]


async def test_a_replica_that_saw_no_failure_names_the_clusters_outage(
    gw: GatewayUnderTest,
    other: Replica,
    population: Population,
    clock: FakeClock,
    database: StoreLocation,
) -> None:
    # One clause for every replica's records (issue 11): the operator forces the circuit
    # once replica A has an outage open; replica B refuses without calling the platform,
    # and its record still names the cluster's outage, not the bank (a forced circuit alone).
    await set_faults(
        gw, {"method": "/essc.platform.v1.IdentityService/CheckRealName", "outage": {}}
    )
    person = adult(population, clock.now().date())
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.Verify(_verify_request(person), metadata=gw.a, timeout=2)
    [outage] = await fetch(database, "SELECT outage_id, clause FROM outages")
    await gw.operator.ForceCircuitOpen(
        opb.ForceCircuitOpenRequest(
            operation="CheckRealName", until=ts(clock.now() + timedelta(hours=1))
        ),
        metadata=gw.ops,
    )

    async def known_to_the_other() -> bool:
        circuits = await other.operator.ListCircuits(opb.ListCircuitsRequest(), metadata=gw.ops)
        forced = any(
            c.operation == "CheckRealName" and c.state == "OPEN" for c in circuits.circuits
        )
        return forced and other.gateway.outages.current("CheckRealName") is not None

    await eventually(known_to_the_other, within=WITHIN)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await other.stub.Verify(_verify_request(person), metadata=gw.a, timeout=2)
    assert rich(refused.value).reason == "PLATFORM_CIRCUIT_OPEN"
    await other.gateway.settle_ledger()
    records = [
        {"clause": r["clause"], "outage_id": r["outage_id"]}
        for r in await liability_records(database)
        if r["reason"] == "PLATFORM_CIRCUIT_OPEN"
    ]
    assert records == [{"clause": outage["clause"], "outage_id": outage["outage_id"]}]
