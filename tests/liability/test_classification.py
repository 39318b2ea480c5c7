"""Every failed request gets the clause that applies (A16), with its evidence, end to end
against the scripted platform. Each scenario has a known truth."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.simplatform import Population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    adult,
    change_to_strong_password,
    identity,
    issue,
    live_sample,
    ts,
    verify,
)
from tests.gateway.test_maintenance import announce
from tests.gateway.test_resilience import set_faults
from tests.sql import fetch, liability_records


async def ledger(gw: GatewayUnderTest, database: StoreLocation) -> list[dict[str, Any]]:
    """The committed records, read from the file (refusals in a window commit after their
    answer: wait for those first)."""
    await gw.gateway.settle_ledger()
    return await liability_records(database)


async def failing_verify(gw: GatewayUnderTest, population: Population, clock: FakeClock) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await verify(gw, adult(population, clock.now().date()), gw.a)


async def test_a16_1_a_maintenance_announced_in_advance(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    now = clock.now()
    window = await announce(gw, now + timedelta(hours=1), now + timedelta(hours=2))
    clock.advance(timedelta(hours=1, minutes=5))
    await failing_verify(gw, population, clock)
    [record] = await ledger(gw, database)
    assert record["clause"] == "A16(1)(a)"
    assert record["window_id"] == window.window_id
    assert record["evidence"]["window_announced_at"] == now.isoformat()
    assert record["bank_id"] == "bank-a"
    assert record["rpc"] == "Verify"


async def test_a_window_announced_after_it_began_is_the_banks_liability(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    now = clock.now()
    await announce(gw, now - timedelta(minutes=10), now + timedelta(hours=1))
    await failing_verify(gw, population, clock)
    assert [r["clause"] for r in await ledger(gw, database)] == ["BANK"]


async def test_a16_1_b_the_platform_answered_with_errors(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await set_faults(gw, {"method": "*", "outage": {}})
    for _ in range(3):
        await failing_verify(gw, population, clock)
    records = await ledger(gw, database)
    assert {r["clause"] for r in records} == {"A16(1)(b)"}
    assert records[-1]["outage_id"]  # the third request already belongs to an outage
    assert records[0]["evidence"]["platform_reached"] == "true"


async def test_a16_1_b_the_platforms_own_maintenance(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await set_faults(gw, {"method": "*", "duration": "600s", "maintenance": {}})
    await failing_verify(gw, population, clock)
    [record] = await ledger(gw, database)
    assert record["clause"] == "A16(1)(b)"
    assert record["reason"] == "PLATFORM_MAINTENANCE"


async def test_a16_1_d_the_platform_could_not_be_reached(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await set_faults(gw, {"method": "*", "connection": {"mode": "CONNECTION_FAILURE_MODE_REFUSE"}})
    for _ in range(3):
        await failing_verify(gw, population, clock)
    records = await ledger(gw, database)
    assert {r["clause"] for r in records} == {"A16(1)(d)"}
    assert records[0]["evidence"]["platform_reached"] == "false"


@pytest.mark.parametrize(
    ("kind", "clause"),
    [
        (opb.INCIDENT_KIND_TYPHOON, "A16(1)(c)"),
        (opb.INCIDENT_KIND_POWER_CUT, "A16(1)(c)"),
        (opb.INCIDENT_KIND_HACKER_ATTACK, "A16(1)(d)"),
        (opb.INCIDENT_KIND_TELECOM_ADJUSTMENT, "A16(1)(d)"),
    ],
)
async def test_a16_1_c_and_d_failures_during_a_declared_incident_move_to_it(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    database: StoreLocation,
    kind: opb.IncidentKind.ValueType,
    clause: str,
) -> None:
    now = clock.now()
    declared = await gw.operator.DeclareIncident(
        opb.DeclareIncidentRequest(
            kind=kind,
            starts_at=ts(now - timedelta(minutes=5)),
            ends_at=ts(now + timedelta(hours=1)),
            description="declared by the duty officer",
        ),
        metadata=gw.ops,
    )
    await set_faults(gw, {"method": "*", "outage": {}})
    await failing_verify(gw, population, clock)
    [record] = await ledger(gw, database)
    assert record["clause"] == clause
    assert record["incident_id"] == declared.incident.incident_id


async def test_a16_2_the_holders_own_fault(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    await change_to_strong_password(gw, person, gw.a)
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=person.id_number,
                scenario=pb.BUSINESS_SCENARIO_VIEW_CARD,
                factors=pb.Factors(password="Wrong-Guess-1"),
            ),
            metadata=gw.a,
        )
    [record] = await ledger(gw, database)
    assert record["clause"] == "A16(2)"
    assert record["evidence"]["failed_factors"] == "PASSWORD"
    assert record["holder_token"]
    assert person.id_number not in json.dumps(record)


async def test_the_banks_own_errors_are_its_liability(
    gw: GatewayUnderTest, database: StoreLocation
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.Verify(pb.VerifyRequest(), metadata=gw.a)
    [record] = await ledger(gw, database)
    assert record["clause"] == "BANK"
    assert record["status_code"] == "INVALID_ARGUMENT"


async def test_outages_open_and_close_within_a_second_of_the_truth(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    start = clock.now()
    person = adult(population, clock.now().date())
    request = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    for step in range(40):  # 20 s in steps of half a second, one Verify each
        # The outage is switched on at 5 s and off at 15 s of the test clock, whatever real
        # time the Verifies take (a timeline on the platform's clock would drift with it).
        if step == 10:
            await set_faults(
                gw, {"method": "/essc.platform.v1.IdentityService/CheckRealName", "outage": {}}
            )
        if step == 30:
            await gw.control.ClearFaults(ppb.ClearFaultsRequest())
        with contextlib.suppress(grpc.aio.AioRpcError):
            # A 1 s deadline: the platform's 10 s pushback is not waited for.
            await gw.stub.Verify(request, metadata=gw.a, timeout=1.0)
        clock.advance(timedelta(milliseconds=500))
    rows = [
        tuple(row.values())
        for row in await fetch(
            database,
            "SELECT started_at, ended_at, reached FROM outages WHERE scope = 'CheckRealName'",
        )
    ]
    assert len(rows) == 1
    started, ended, reached = rows[0]
    truth_start, truth_end = start + timedelta(seconds=5), start + timedelta(seconds=15)
    assert abs((datetime.fromisoformat(started) - truth_start).total_seconds()) <= 1
    assert abs((datetime.fromisoformat(ended) - truth_end).total_seconds()) <= 1
    assert reached == 1
    report = await gw.operator.GetLiabilityReport(
        opb.GetLiabilityReportRequest(
            bank_id="bank-a",
            since=ts(start),
            until=ts(clock.now()),
            format=opb.REPORT_FORMAT_JSON,
        ),
        metadata=gw.ops,
    )
    minutes = json.loads(report.body)["outage_minutes"]["A16(1)(b)"]
    assert minutes == pytest.approx(10 / 60, abs=1 / 60)  # 10 s of outage, within a second
