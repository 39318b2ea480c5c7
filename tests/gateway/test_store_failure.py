"""When the gateway's store cannot write (issue 10, defect 11): UNAVAILABLE with a stable
reason and the outcome, health NOT_SERVING until writes succeed again, no restart needed,
and the failure still evidenced in the ledger once the store is back."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.simplatform import Population
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import adult, consent, issue_request, rich, ts, verify
from tests.polling import eventually


async def _read_only(gw: GatewayUnderTest, on: bool) -> None:
    """As a file system remounted read-only after I/O errors: every write of the gateway's
    store fails until lifted. Set on the store's own writer connection, in its thread."""
    store = gw.gateway._store
    assert store is not None
    writer = store._writer
    await asyncio.get_running_loop().run_in_executor(
        writer._thread, writer._db.execute, f"PRAGMA query_only={int(on)}"
    )


async def _health(gw: GatewayUnderTest) -> int:
    reply = await health_pb2_grpc.HealthStub(gw.channel).Check(health_pb2.HealthCheckRequest())
    return int(reply.status)


async def test_a_store_that_cannot_write_is_unavailable_evidenced_and_recovers(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    request = issue_request(person, verified.verification_token, consent(clock.now()))
    await _read_only(gw, True)

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

    await _read_only(gw, False)  # no restart: the gateway finds out by itself

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
