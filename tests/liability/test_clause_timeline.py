"""A scripted timeline of windows changed while they run, unannounced windows, overruns,
platform outages, an incident declared after the failures it covers, concurrent checks and
the gateway's own errors, each request with its own truth: the ledger must name the right
clause for every one (as amended), the complaint must list the holder's refusals, and the
offline verifier must reach the same clauses from an evidence bundle alone."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.evidence.verify import verify_bundle
from essc_gateway.simplatform import Person, Population
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    STRONG_PASSWORD,
    adult,
    auth_token,
    change_to_strong_password,
    identity,
    issue,
    live_sample,
    rich,
    ts,
)
from tests.gateway.test_maintenance import announce
from tests.gateway.test_resilience import set_faults

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


class Timeline:
    """Sends requests and keeps each failed one's truth by its ledger_request_id."""

    def __init__(self, gw: GatewayUnderTest, population: Population, clock: FakeClock) -> None:
        self.gw, self.population, self.clock = gw, population, clock
        self.start = clock.now()
        self.truth: dict[str, str] = {}
        self.case: dict[str, str] = {}
        self._people = 0

    def person(self) -> Person:
        self._people += 1
        return adult(self.population, self.clock.now().date(), skip=self._people)

    def failed(self, error: grpc.aio.AioRpcError, clause: str, case: str) -> str:
        request_id = rich(error).metadata["ledger_request_id"]
        self.truth[request_id] = clause
        self.case[request_id] = case
        return request_id

    async def verify(self, clause: str, case: str, *, fail: bool = True) -> None:
        person = self.person()
        request = pb.VerifyRequest(
            applicant=identity(person),
            physical_card_number=person.card_number,
            biometric_sample=live_sample(person),
        )
        if not fail:
            await self.gw.stub.Verify(request, metadata=self.gw.a)
            return
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await self.gw.stub.Verify(request, metadata=self.gw.a, timeout=5)
        self.failed(raised.value, clause, case)

    def at(self, offset: timedelta) -> None:
        self.clock.advance(offset - (self.clock.now() - self.start))

    async def operator_amend(self, window_id: str, ends_after: timedelta) -> None:
        await self.gw.operator.AmendMaintenance(
            opb.AmendMaintenanceRequest(
                window_id=window_id,
                ends_at=ts(self.start + ends_after),
                channels=[opb.NOTICE_CHANNEL_MOBILE_BANKING],
                notice="The upgrade runs 30 minutes longer",
            ),
            metadata=self.gw.ops,
        )


async def test_every_failed_request_gets_the_right_clause(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    line = Timeline(gw, population, clock)
    start = line.start
    holder = line.person()
    await issue(gw, holder, gw.a, start)
    await change_to_strong_password(gw, holder, gw.a)
    query_token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)

    # A window announced publicly two hours ahead, extended once it had begun: the part
    # announced in advance stays A16(1)(a), the extension is the bank's.
    window = await announce(gw, start + 2 * HOUR, start + 2.5 * HOUR)
    await announce(gw, start + 6 * HOUR, start + 6.5 * HOUR)  # for the Query, below
    line.at(2 * HOUR + 5 * MINUTE)
    await line.verify("A16(1)(a)", "window announced in advance")
    line.at(2 * HOUR + 10 * MINUTE)
    await line.operator_amend(window.window_id, 3 * HOUR)
    line.at(2 * HOUR + 20 * MINUTE)
    await line.verify("A16(1)(a)", "announced part of an extended window")
    line.at(2 * HOUR + 40 * MINUTE)
    await line.verify("BANK", "extension announced once the window ran")

    # Recorded but never announced to holders: the bank's.
    await gw.operator.AnnounceMaintenance(
        opb.AnnounceMaintenanceRequest(
            kind=opb.MAINTENANCE_KIND_BANK,
            starts_at=ts(start + 5 * HOUR),
            ends_at=ts(start + 5.5 * HOUR),
            reason="database failover",
        ),
        metadata=gw.ops,
    )
    line.at(5 * HOUR + 10 * MINUTE)
    await line.verify("BANK", "window with no public notice")

    # A Query refused in an announced window: A16(1)(a), and filed under its holder.
    line.at(6 * HOUR + 10 * MINUTE)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Query(pb.QueryRequest(auth_token=query_token), metadata=gw.a)
    query_refusal = line.failed(raised.value, "A16(1)(a)", "Query refused in a window")

    # The platform fails right after the window ends: its errors are its own (A16(1)(b)).
    await set_faults(gw, {"method": "*", "outage": {}})
    for minute in (31, 32, 33, 34):
        line.at(6 * HOUR + minute * MINUTE)
        await line.verify("A16(1)(b)", "platform errors just after a window")
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    line.at(6 * HOUR + 40 * MINUTE)
    await line.verify("", "", fail=False)

    # An outage; a typhoon declared five minutes later covering it: amended to A16(1)(c).
    await set_faults(gw, {"method": "*", "outage": {}})
    for minute in (1, 2, 3):
        line.at(7 * HOUR + minute * MINUTE)
        await line.verify("A16(1)(c)", "failure before its incident was declared")
    line.at(7 * HOUR + 5 * MINUTE)
    await gw.operator.DeclareIncident(
        opb.DeclareIncidentRequest(
            kind=opb.INCIDENT_KIND_TYPHOON,
            starts_at=ts(start + 7 * HOUR),
            ends_at=ts(start + 7 * HOUR + 10 * MINUTE),
            description="Typhoon: the data centre runs on generators",
        ),
        metadata=gw.ops,
    )
    line.at(7 * HOUR + 6 * MINUTE)
    await line.verify("A16(1)(c)", "failure after its incident was declared")
    # The gateway's own error during the incident stays the bank's.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Verify(pb.VerifyRequest(), metadata=gw.a)
    line.failed(raised.value, "BANK", "the bank's own bad request during an incident")
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())

    # Six concurrent checks of the right password: those refused because the others were in
    # progress are not the holder's fault; a wrong password is.
    line.at(8 * HOUR)
    await gw.control.SetLatency(
        ppb.SetLatencyRequest(
            method="/essc.platform.v1.AuthService/VerifyPassword", base={"nanos": 200_000_000}
        )
    )
    right = pb.AuthenticateRequest(
        social_security_number=holder.id_number,
        scenario=pb.BUSINESS_SCENARIO_VIEW_CARD,
        factors=pb.Factors(password=STRONG_PASSWORD),
    )
    results = await asyncio.gather(
        *(gw.stub.Authenticate(right, metadata=gw.a) for _ in range(6)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert refused, "six checks at once: the sixth waits for the others"
    for error in refused:
        assert rich(error).reason == "FACTOR_CHECKS_IN_PROGRESS"
        line.failed(error, "BANK", "check refused while others were in progress")
    wrong = pb.AuthenticateRequest(
        social_security_number=holder.id_number,
        scenario=pb.BUSINESS_SCENARIO_VIEW_CARD,
        factors=pb.Factors(password="Not-The-Password-1"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(wrong, metadata=gw.a)
    line.failed(raised.value, "A16(2)", "the holder's wrong password")

    # The ledger, as amended, against the truth.
    reply = await gw.operator.GetLiabilityReport(
        opb.GetLiabilityReportRequest(
            bank_id="bank-a",
            since=ts(start),
            until=ts(clock.now() + MINUTE),
            format=opb.REPORT_FORMAT_JSON,
        ),
        metadata=gw.ops,
    )
    report = json.loads(reply.body)
    standing = {r["request_id"]: r["standing_clause"] for r in report["records"]}
    misses = {
        line.case[r]: (standing.get(r), clause)
        for r, clause in line.truth.items()
        if standing.get(r) != clause
    }
    accuracy = 1 - len(misses) / len(line.truth)
    assert misses == {}
    assert accuracy == 1.0
    assert len(line.truth) >= 15
    amended = [r for r in report["records"] if r["amendments"]]
    assert len(amended) == 3
    assert {a["amendments"][0]["declared_by"] for a in amended} == {"ops"}

    # The complaint of the holder lists the Query refused in the window.
    complaint = await gw.operator.GetLiabilityReport(
        opb.GetLiabilityReportRequest(
            since=ts(start),
            until=ts(clock.now() + MINUTE),
            holder_social_security_number=holder.id_number,
            format=opb.REPORT_FORMAT_JSON,
        ),
        metadata=gw.ops,
    )
    listed = {r["request_id"] for r in json.loads(complaint.body)["records"]}
    assert query_refusal in listed

    # The same clauses from a bundle alone, checked offline.
    bundle = await gw.operator.GetEvidenceBundle(
        opb.GetEvidenceBundleRequest(ledger_request_ids=list(line.truth)), metadata=gw.ops
    )
    key = (
        await gw.operator.GetCheckpoint(opb.GetCheckpointRequest(), metadata=gw.ops)
    ).verifier_key
    verdict = verify_bundle(bundle.bundle, key)
    assert verdict.problems == []
    assert {r.request_id: r.clause.value for r in verdict.requests} == line.truth
