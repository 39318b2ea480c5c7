"""Every OperatorService RPC through `OperatorClient`, against the real gateway."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from essc.gateway.v1 import errors_pb2
from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.simplatform import Population
from essc_gateway.testing import FakeClock
from essc_gateway_client import (
    ClientConfig,
    FailedPrecondition,
    GatewayClient,
    OperatorClient,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from tests.conftest import BANK_A_TOKEN, GatewayUnderTest
from tests.gateway.flows import adult, identity, live_sample, ts


async def test_windows_are_announced_amended_listed_and_cancelled(
    operator: OperatorClient, clock: FakeClock
) -> None:
    now = clock.now()
    announced = await operator.announce_maintenance(
        opb.AnnounceMaintenanceRequest(
            kind=opb.MAINTENANCE_KIND_PLATFORM,
            starts_at=ts(now + timedelta(hours=1)),
            ends_at=ts(now + timedelta(hours=2)),
            reason="platform upgrade",
            channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
            notice="https://bank.example/notices/maintenance",
        )
    )
    window_id = announced.window.window_id
    amended = await operator.amend_maintenance(
        opb.AmendMaintenanceRequest(window_id=window_id, ends_at=ts(now + timedelta(hours=3)))
    )
    assert amended.window.version == 2
    listed = await operator.list_maintenance(opb.ListMaintenanceRequest(current_only=True))
    assert [w.window_id for w in listed.windows] == [window_id]
    cancelled = await operator.cancel_maintenance(opb.CancelMaintenanceRequest(window_id=window_id))
    assert cancelled.window.HasField("cancelled_at")
    listed = await operator.list_maintenance(opb.ListMaintenanceRequest(current_only=True))
    assert list(listed.windows) == []


async def test_a_forced_circuit_fails_bank_calls_until_released(
    operator: OperatorClient, bank: GatewayClient, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    request = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    forced = await operator.force_circuit_open(
        opb.ForceCircuitOpenRequest(
            operation="CheckRealCard", until=ts(clock.now() + timedelta(minutes=10))
        )
    )
    assert [c.state for c in forced.circuits] == ["OPEN"]
    with pytest.raises(Unavailable) as raised:
        await bank.verify(request)
    assert raised.value.reason == "PLATFORM_CIRCUIT_OPEN"
    assert not raised.value.is_maintenance
    assert raised.value.retry_after is not None
    assert raised.value.retry_after.total_seconds() == pytest.approx(600, abs=1)

    released = await operator.release_circuit(opb.ReleaseCircuitRequest(operation="CheckRealCard"))
    assert all(c.state != "OPEN" for c in released.circuits)
    circuits = await operator.list_circuits(opb.ListCircuitsRequest())
    assert "CheckRealCard" in {c.operation for c in circuits.circuits}
    assert (await bank.verify(request)).verified


async def test_incidents_reports_statements_and_the_ledger(
    operator: OperatorClient, bank: GatewayClient, population: Population, clock: FakeClock
) -> None:
    now = clock.now()
    declared = await operator.declare_incident(
        opb.DeclareIncidentRequest(
            kind=opb.INCIDENT_KIND_POWER_CUT,
            starts_at=ts(now - timedelta(minutes=5)),
            ends_at=ts(now + timedelta(hours=1)),
            description="substation failure",
        )
    )
    assert declared.incident.clause == "A16(1)(c)"  # force majeure
    incidents = await operator.list_incidents(opb.ListIncidentsRequest())
    assert [i.incident_id for i in incidents.incidents] == [declared.incident.incident_id]

    report = await operator.get_liability_report(
        opb.GetLiabilityReportRequest(
            bank_id="bank-a",
            since=ts(now - timedelta(hours=1)),
            until=ts(now + timedelta(hours=1)),
            format=opb.REPORT_FORMAT_JSON,
        )
    )
    assert report.content_type == "application/json"
    assert isinstance(json.loads(report.body), dict)
    statement = await operator.get_monthly_statement(
        opb.GetMonthlyStatementRequest(
            bank_id="bank-a", month=now.strftime("%Y-%m"), format=opb.REPORT_FORMAT_JSON
        )
    )
    assert json.loads(statement.body)["bank_id"] == "bank-a"
    ledger = await operator.verify_ledger(opb.VerifyLedgerRequest())
    assert ledger.intact
    assert list(ledger.problems) == []


async def test_the_operator_service_refuses_banks_and_strangers(gw: GatewayUnderTest) -> None:
    target = f"127.0.0.1:{gw.gateway.port}"
    async with OperatorClient(ClientConfig(target, token=BANK_A_TOKEN)) as as_bank:
        with pytest.raises((Unauthenticated, PermissionDenied)):
            await as_bank.list_circuits(opb.ListCircuitsRequest())
    async with OperatorClient(ClientConfig(target)) as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.list_circuits(opb.ListCircuitsRequest())


async def test_keys_are_rotated_listed_and_guarded_through_the_client(
    operator: OperatorClient,
) -> None:
    rotated = await operator.rotate_key(
        opb.RotateKeyRequest(bank_id="bank-b", purpose=opb.KEY_PURPOSE_TOKENS)
    )
    assert rotated.key.key_id == "bank-b/TOKENS/v2"
    status = await operator.get_key_status(opb.GetKeyStatusRequest())
    assert "bank-b/TOKENS/v2" in {k.key_id for k in status.keys}
    with pytest.raises(FailedPrecondition) as raised:
        await operator.retire_key(
            opb.RetireKeyRequest(bank_id="bank-b", purpose=opb.KEY_PURPOSE_TOKENS, version=2)
        )
    assert raised.value.reason_value == errors_pb2.ERROR_REASON_KEY_IN_USE
    report = await operator.declare_key_compromised(
        opb.DeclareKeyCompromisedRequest(
            bank_id="bank-b", purpose=opb.KEY_PURPOSE_TOKENS, version=2, reason="test"
        )
    )
    assert [k.key_id for k in report.replacements] == ["bank-b/TOKENS/v3"]
