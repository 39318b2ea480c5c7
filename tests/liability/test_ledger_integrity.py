"""The ledger is tamper-evident, and reports answer for a bank, a month and a complaint."""

from __future__ import annotations

import json
from datetime import date, timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.gateway.v1 import operator_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.evidence.signed_note import NoteVerifier
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.evidence.attacks import edit_entry, rewrite_history
from tests.gateway.flows import (
    adult,
    auth_token,
    change_to_strong_password,
    issue,
    key,
    rich,
    ts,
)
from tests.sql import execute, fetch


async def _failures(gw: GatewayUnderTest, population: Population, clock: FakeClock, n: int) -> None:
    today = clock.now().date()
    for i in range(n):
        person = adult(population, today, skip=i)
        with pytest.raises(grpc.aio.AioRpcError):
            await gw.stub.RequestSmsCode(
                pb.RequestSmsCodeRequest(
                    social_security_number=person.id_number,
                    scenario=pb.BUSINESS_SCENARIO_PAYMENT,
                ),
                metadata=gw.a,
            )


async def verify(gw: GatewayUnderTest, *kept: str) -> opb.VerifyLedgerResponse:
    return await gw.operator.VerifyLedger(
        opb.VerifyLedgerRequest(kept_checkpoints=list(kept)), metadata=gw.ops
    )


async def checkpoint(gw: GatewayUnderTest) -> opb.GetCheckpointResponse:
    return await gw.operator.GetCheckpoint(opb.GetCheckpointRequest(), metadata=gw.ops)


async def test_an_untouched_log_verifies(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    await _failures(gw, population, clock, 5)
    kept = await checkpoint(gw)
    result = await verify(gw, kept.checkpoint)
    assert result.problems == []
    assert result.intact
    assert kept.tree_size >= 5  # the records, at least
    # Then the access log's entries of GetCheckpoint's answer and VerifyLedger's admission.
    assert result.entries == kept.tree_size + 2


async def test_an_edited_record_row_is_found(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await _failures(gw, population, clock, 5)
    # Moved to another bank: the record would vanish from its bank's reports.
    await execute(database, "UPDATE liability_records SET bank_id = 'bank-b' WHERE seq = 3")
    result = await verify(gw)
    assert not result.intact
    assert any("row was edited" in p for p in result.problems)


async def test_an_edited_log_entry_is_found(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await _failures(gw, population, clock, 5)
    [row] = await fetch(database, "SELECT request_id FROM liability_records WHERE seq = 2")
    await edit_entry(
        database, "LIABILITY_RECORD", row["request_id"], lambda e: {**e, "clause": "A16(1)(c)"}
    )
    result = await verify(gw)
    assert not result.intact
    assert any("leaf hash does not match" in p for p in result.problems)


async def test_a_rewritten_history_is_found_against_a_kept_checkpoint(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await _failures(gw, population, clock, 5)
    kept = (await checkpoint(gw)).checkpoint
    [row] = await fetch(database, "SELECT request_id FROM liability_records WHERE seq = 2")
    await rewrite_history(
        database, "LIABILITY_RECORD", row["request_id"], lambda e: {**e, "clause": "A16(1)(c)"}
    )
    await execute(database, "UPDATE liability_records SET clause = 'A16(1)(c)' WHERE seq = 2")
    assert (await verify(gw)).intact  # a careful rewrite looks whole on its own...
    result = await verify(gw, kept)
    assert not result.intact  # ...but not to whoever kept a checkpoint
    assert any("history was rewritten" in p for p in result.problems)


async def test_a_removed_tail_is_found_against_a_kept_checkpoint(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    await _failures(gw, population, clock, 5)
    kept = await checkpoint(gw)
    await execute(database, "DELETE FROM liability_records WHERE seq >= 4")
    await rewrite_history(database, keep=kept.tree_size - 3)
    result = await verify(gw, kept.checkpoint)
    assert not result.intact
    assert any("the log is shorter" in p for p in result.problems)


async def test_a_complaint_report_shows_only_that_holder_and_the_a15_due_date(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    await _failures(gw, population, clock, 3)
    holder = adult(population, clock.now().date(), skip=1)
    now = clock.now()
    reply = await gw.operator.GetLiabilityReport(
        opb.GetLiabilityReportRequest(
            since=ts(now - timedelta(days=1)),
            until=ts(now + timedelta(days=1)),
            holder_social_security_number=holder.id_number,
            complaint_accepted_on="2026-11-06",
            format=opb.REPORT_FORMAT_JSON,
        ),
        metadata=gw.ops,
    )
    report = json.loads(reply.body)
    assert reply.content_type == "application/json"
    assert len(report["records"]) == 1
    assert report["complaint"]["due_on"] == date(2026, 11, 27).isoformat()
    assert holder.id_number not in reply.body


@pytest.mark.parametrize(
    ("fmt", "content_type", "marker"),
    [
        (opb.REPORT_FORMAT_HTML, "text/html", "<svg"),
        (opb.REPORT_FORMAT_TABLE, "text/plain", "BANK"),
    ],
)
async def test_a_bank_report_in_each_format(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    fmt: opb.ReportFormat.ValueType,
    content_type: str,
    marker: str,
) -> None:
    await _failures(gw, population, clock, 2)
    now = clock.now()
    reply = await gw.operator.GetLiabilityReport(
        opb.GetLiabilityReportRequest(
            bank_id="bank-a",
            since=ts(now - timedelta(hours=1)),
            until=ts(now + timedelta(hours=1)),
            format=fmt,
        ),
        metadata=gw.ops,
    )
    assert reply.content_type == content_type
    assert marker in reply.body


async def test_the_monthly_statement_carries_availability_and_a_signed_checkpoint(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    platform: SimulatedPlatform,
) -> None:
    await _failures(gw, population, clock, 2)
    await gw.gateway.stop(0)  # flushes the request counts to the store
    restarted = Gateway(gw.config, platform.address, clock)
    port = await restarted.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await operator_pb2_grpc.OperatorServiceStub(channel).GetMonthlyStatement(
                opb.GetMonthlyStatementRequest(
                    bank_id="bank-a", month="2026-11", format=opb.REPORT_FORMAT_JSON
                ),
                metadata=gw.ops,
            )
        verifier_key = restarted.checkpointer.verifier_key
    finally:
        await restarted.stop(0)
    statement = json.loads(reply.body)
    assert statement["requests"] == 2
    assert statement["failed"] == 2
    note = statement["checkpoint"].encode()
    verifier = NoteVerifier.from_verifier_key(verifier_key)
    assert verifier.open_checkpoint(note).size >= 2


async def test_a_complaint_finds_failures_of_calls_that_carry_only_an_auth_token(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    await change_to_strong_password(gw, person, gw.a)
    query = await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    unbind = await auth_token(
        gw, person, gw.a, pb.BUSINESS_SCENARIO_UNBIND, sms=True, biometric=True
    )
    await gw.stub.Terminate(
        pb.TerminateRequest(auth_token=unbind, idempotency_key=key()), metadata=gw.a
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # the card is gone
        await gw.stub.Query(pb.QueryRequest(auth_token=query), metadata=gw.a)
    assert rich(raised.value).metadata["ledger_request_id"]
    now = clock.now()
    reply = await gw.operator.GetLiabilityReport(
        opb.GetLiabilityReportRequest(
            since=ts(now - timedelta(hours=1)),
            until=ts(now + timedelta(hours=1)),
            holder_social_security_number=person.id_number,
            format=opb.REPORT_FORMAT_JSON,
        ),
        metadata=gw.ops,
    )
    assert [r["rpc"] for r in json.loads(reply.body)["records"]] == ["Query"]
