"""Every GatewayService RPC through `GatewayClient`, against the real gateway and platform."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.domain.passwords import initial_password
from essc_gateway.simplatform import Person, Population
from essc_gateway.testing import FakeClock
from essc_gateway_client import (
    ClientConfig,
    FailedPrecondition,
    GatewayClient,
    InvalidArgument,
    NotFound,
    OperatorClient,
    Unauthenticated,
    Unavailable,
    new_idempotency_key,
)
from tests.conftest import BANK_A_TOKEN, GatewayUnderTest
from tests.gateway.flows import (
    STRONG_PASSWORD,
    adult,
    consent,
    identity,
    issue_request,
    latest_sms_code,
    live_sample,
    ts,
)


def verify_request(person: Person) -> pb.VerifyRequest:
    return pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )


async def verified_issue_request(
    bank: GatewayClient, person: Person, clock: FakeClock
) -> pb.IssueRequest:
    verified = await bank.verify(verify_request(person))
    assert verified.verified
    return issue_request(
        person, verified.verification_token, consent(clock.now()), new_idempotency_key()
    )


async def login(
    bank: GatewayClient,
    gw: GatewayUnderTest,
    person: Person,
    scenario: pb.BusinessScenario.ValueType,
    *,
    sms: bool = False,
    biometric: bool = False,
) -> str:
    code = ""
    if sms:
        sent = await bank.request_sms_code(
            pb.RequestSmsCodeRequest(social_security_number=person.id_number, scenario=scenario)
        )
        assert sent.HasField("expires_at")
        code = await latest_sms_code(gw, person)
    reply = await bank.authenticate(
        pb.AuthenticateRequest(
            social_security_number=person.id_number,
            scenario=scenario,
            factors=pb.Factors(
                password=STRONG_PASSWORD,
                sms_code=code,
                biometric_sample=live_sample(person, 3) if biometric else b"",
            ),
        )
    )
    assert reply.state == pb.AUTHENTICATION_STATE_AUTHENTICATED
    return reply.auth_token


@pytest.fixture
def holder(population: Population) -> Person:
    return next(
        p
        for p in population.people
        if p.personal_status == "EMPLOYED" and p.civil_capacity == "FULL" and p.contributions
    )


async def test_a_bank_journey_through_every_rpc(
    bank: GatewayClient, gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    issued = await bank.issue(await verified_issue_request(bank, holder, clock))
    assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED

    first = await bank.authenticate(
        pb.AuthenticateRequest(
            social_security_number=holder.id_number,
            scenario=pb.BUSINESS_SCENARIO_QUERY_RECORDS,
            factors=pb.Factors(password=initial_password(holder.id_number)),
        )
    )
    assert first.state == pb.AUTHENTICATION_STATE_PASSWORD_CHANGE_REQUIRED
    changed = await bank.change_password(
        pb.ChangePasswordRequest(
            social_security_number=holder.id_number,
            current_password=initial_password(holder.id_number),
            new_password=STRONG_PASSWORD,
            idempotency_key=new_idempotency_key(),
        )
    )
    assert changed.HasField("changed_at")

    records = await bank.query(
        pb.QueryRequest(
            auth_token=await login(bank, gw, holder, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
        )
    )
    assert records.card.essc_id == issued.card.essc_id
    assert len(records.contributions) == len(holder.contributions)

    await gw.control.ReportCardLost(ppb.ReportCardLostRequest(id_number=holder.id_number))
    loss = await login(bank, gw, holder, pb.BUSINESS_SCENARIO_CARD_LOSS, sms=True)
    allowed = await bank.authorize_continued_use(pb.AuthorizeContinuedUseRequest(auth_token=loss))
    assert allowed.card.status == pb.CARD_STATUS_LOST_CONTINUED_USE

    clock.advance(timedelta(seconds=61))  # one SMS code per holder per minute
    unbind = await login(bank, gw, holder, pb.BUSINESS_SCENARIO_UNBIND, sms=True, biometric=True)
    query = await login(bank, gw, holder, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    ended = await bank.terminate(
        pb.TerminateRequest(auth_token=unbind, idempotency_key=new_idempotency_key())
    )
    assert ended.card.status == pb.CARD_STATUS_TERMINATED

    with pytest.raises(FailedPrecondition) as raised:
        await bank.query(pb.QueryRequest(auth_token=query))
    assert raised.value.reason == "CARD_TERMINATED"


async def test_a_bad_request_raises_invalid_argument_with_its_field_violations(
    bank: GatewayClient, population: Population, clock: FakeClock
) -> None:
    request = verify_request(adult(population, clock.now().date()))
    ssn = request.applicant.social_security_number
    last = "0" if ssn[-1] != "0" else "1"
    request.applicant.social_security_number = ssn[:-1] + last
    request.physical_card_number = ""
    with pytest.raises(InvalidArgument) as raised:
        await bank.verify(request)
    error = raised.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_FIELD"
    assert error.domain == "essc-gateway.v1"
    assert error.field_violations["applicant.social_security_number"] == "BAD_CHECK_DIGIT"
    assert "physical_card_number" in error.field_violations
    assert error.__cause__ is None
    assert error.__suppress_context__  # raised `from None`: no AioRpcError chained in logs
    assert ssn not in str(error)


async def test_a_maintenance_window_raises_unavailable_with_retry_after(
    bank: GatewayClient,
    operator: OperatorClient,
    population: Population,
    clock: FakeClock,
) -> None:
    now = clock.now()
    announced = await operator.announce_maintenance(
        opb.AnnounceMaintenanceRequest(
            kind=opb.MAINTENANCE_KIND_BANK,
            starts_at=ts(now + timedelta(minutes=1)),
            ends_at=ts(now + timedelta(minutes=31)),
            rpcs=["Verify"],
            reason="core banking upgrade",
            channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
            notice="https://bank.example/notices/maintenance",
        )
    )
    clock.advance(timedelta(minutes=2))
    with pytest.raises(Unavailable) as raised:
        await bank.verify(verify_request(adult(population, now.date())))
    error = raised.value
    assert error.is_maintenance
    assert not error.is_in_doubt
    assert error.metadata["window_id"] == announced.window.window_id
    assert error.retry_after is not None
    assert error.retry_after.total_seconds() == pytest.approx(29 * 60, abs=1)

    current = await operator.list_maintenance(opb.ListMaintenanceRequest(current_only=True))
    assert [w.window_id for w in current.windows] == [announced.window.window_id]


async def test_an_issue_accepted_during_a_window_is_followed_with_get_issue_status(
    bank: GatewayClient,
    operator: OperatorClient,
    population: Population,
    clock: FakeClock,
) -> None:
    now = clock.now()
    request = await verified_issue_request(bank, adult(population, now.date(), skip=2), clock)
    await operator.announce_maintenance(
        opb.AnnounceMaintenanceRequest(
            kind=opb.MAINTENANCE_KIND_BANK,
            starts_at=ts(now),
            ends_at=ts(now + timedelta(minutes=30)),
            rpcs=["Issue"],
            reason="card system upgrade",
            channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
            notice="https://bank.example/notices/maintenance",
        )
    )
    pending = await bank.issue(request)  # bank A opted into store-and-forward
    assert pending.outcome == pb.ISSUE_OUTCOME_PENDING
    status = await bank.get_issue_status(
        pb.GetIssueStatusRequest(idempotency_key=request.idempotency_key)
    )
    assert status.state == pb.ISSUE_STATE_PENDING

    with pytest.raises(NotFound) as raised:
        await bank.get_issue_status(pb.GetIssueStatusRequest(idempotency_key=new_idempotency_key()))
    assert raised.value.reason == "ISSUE_NOT_FOUND"


async def test_a_wrong_token_raises_unauthenticated(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    config = ClientConfig(f"127.0.0.1:{gw.gateway.port}", token=BANK_A_TOKEN[::-1])
    async with GatewayClient(config) as stranger:
        with pytest.raises(Unauthenticated) as raised:
            await stranger.verify(verify_request(adult(population, clock.now().date())))
    assert raised.value.reason == "BANK_UNAUTHENTICATED"


async def test_a_client_on_a_shared_channel_leaves_it_open(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    config = ClientConfig("127.0.0.1:1", token=BANK_A_TOKEN)  # target unused with a channel
    async with GatewayClient(config, channel=gw.channel) as client:
        assert client.channel is gw.channel
        reply = await client.verify(verify_request(adult(population, clock.now().date())))
        assert reply.verified
    # Still usable by its owner.
    again = await GatewayClient(config, channel=gw.channel).verify(
        verify_request(adult(population, clock.now().date()))
    )
    assert again.verified
