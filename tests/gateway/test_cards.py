"""Query (A13(1), K), card loss and replacement (A6), termination (A12)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.simplatform import Person, Population
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    STRONG_PASSWORD,
    auth_token,
    change_to_strong_password,
    issue,
    key,
    rich,
)


@pytest.fixture
async def holder(gw: GatewayUnderTest, population: Population, clock: FakeClock) -> Person:
    # Someone of working age with contribution records.
    person = next(
        p
        for p in population.people
        if p.personal_status == "EMPLOYED" and p.civil_capacity == "FULL" and p.contributions
    )
    await issue(gw, person, gw.a, clock.now())
    await change_to_strong_password(gw, person, gw.a)
    return person


async def test_k_query_returns_status_contributions_accounts_and_qualifications(
    gw: GatewayUnderTest, holder: Person
) -> None:
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    info = await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
    assert info.card.status == pb.CARD_STATUS_ACTIVE
    assert info.personal_status == pb.PERSONAL_STATUS_EMPLOYED
    assert len(info.contributions) == len(holder.contributions)
    assert {c.period for c in info.contributions} == {c.period for c in holder.contributions}
    assert info.pension_balance_fen == holder.pension_balance_fen
    assert info.medical_balance_fen == holder.medical_balance_fen
    assert len(info.qualifications) == len(holder.qualifications)


async def test_query_needs_a_token_for_the_query_scenario(
    gw: GatewayUnderTest, holder: Person
) -> None:
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_VIEW_CARD)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "AUTH_TOKEN_WRONG_SCENARIO"


async def test_another_banks_auth_token_is_not_valid(gw: GatewayUnderTest, holder: Person) -> None:
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.b)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "AUTH_TOKEN_INVALID"


async def test_an_expired_or_forged_auth_token_is_refused(
    gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Query(pb.QueryRequest(auth_token=forged), metadata=gw.a)
    assert rich(raised.value).reason == "AUTH_TOKEN_INVALID"
    clock.advance(timedelta(minutes=6))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
    assert rich(raised.value).reason == "AUTH_TOKEN_EXPIRED"


async def test_a6_lost_card_suspends_until_continued_use_then_replacement_follows(
    gw: GatewayUnderTest, holder: Person
) -> None:
    before = await gw.stub.Query(
        pb.QueryRequest(
            auth_token=await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
        ),
        metadata=gw.a,
    )
    await gw.control.ReportCardLost(ppb.ReportCardLostRequest(id_number=holder.id_number))

    # Suspended: querying records is refused until the holder authorises continued use.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "CARD_SUSPENDED"

    loss_token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_CARD_LOSS, sms=True)
    allowed = await gw.stub.AuthorizeContinuedUse(
        pb.AuthorizeContinuedUseRequest(auth_token=loss_token), metadata=gw.a
    )
    assert allowed.card.status == pb.CARD_STATUS_LOST_CONTINUED_USE
    during = await gw.stub.Query(
        pb.QueryRequest(
            auth_token=await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
        ),
        metadata=gw.a,
    )
    assert during.card.status == pb.CARD_STATUS_LOST_CONTINUED_USE

    replaced = await gw.control.ReplaceCard(ppb.ReplaceCardRequest(id_number=holder.id_number))
    after = await gw.stub.Query(
        pb.QueryRequest(
            auth_token=await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
        ),
        metadata=gw.a,
    )
    # Same e-SSC, now on the new card: no unbinding, no re-application.
    assert after.card.essc_id == before.card.essc_id
    assert after.card.status == pb.CARD_STATUS_ACTIVE
    assert after.card.physical_card_number_masked.endswith(replaced.new_card_number[-4:])
    assert after.card.physical_card_number_masked != before.card.physical_card_number_masked


async def test_a6_continued_use_needs_a_lost_card(gw: GatewayUnderTest, holder: Person) -> None:
    loss_token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_CARD_LOSS, sms=True)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.AuthorizeContinuedUse(
            pb.AuthorizeContinuedUseRequest(auth_token=loss_token), metadata=gw.a
        )
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "CARD_NOT_SUSPENDED"


async def test_a12_terminate_ends_the_service_and_a_new_card_can_be_issued_later(
    gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    unbind = await auth_token(
        gw, holder, gw.a, pb.BUSINESS_SCENARIO_UNBIND, sms=True, biometric=True
    )
    query = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    ended = await gw.stub.Terminate(
        pb.TerminateRequest(auth_token=unbind, idempotency_key=key()), metadata=gw.a
    )
    assert ended.card.status == pb.CARD_STATUS_TERMINATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Query(pb.QueryRequest(auth_token=query), metadata=gw.a)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "CARD_TERMINATED"
    again = await issue(gw, holder, gw.a, clock.now())
    assert again.outcome == pb.ISSUE_OUTCOME_ISSUED
    assert again.card.essc_id != ended.card.essc_id


async def test_a12_terminate_requires_the_unbind_scenario(
    gw: GatewayUnderTest, holder: Person
) -> None:
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_PAYMENT, sms=True)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Terminate(
            pb.TerminateRequest(auth_token=token, idempotency_key=key()), metadata=gw.a
        )
    assert rich(raised.value).code == grpc.StatusCode.PERMISSION_DENIED


async def test_a6_a_token_obtained_before_the_loss_queries_no_records_while_suspended(
    gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    # Issue 10, defect 6: the token kept returning records for its whole lifetime.
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    unbind = await auth_token(
        gw, holder, gw.a, pb.BUSINESS_SCENARIO_UNBIND, sms=True, biometric=True
    )
    await gw.control.ReportCardLost(ppb.ReportCardLostRequest(id_number=holder.id_number))

    for call in (
        gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a),
        gw.stub.Terminate(
            pb.TerminateRequest(auth_token=unbind, idempotency_key=key()), metadata=gw.a
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        error = rich(raised.value)
        assert error.code == grpc.StatusCode.FAILED_PRECONDITION
        assert error.reason == "CARD_SUSPENDED"

    # Once continued use is authorised, the same token serves again.
    clock.advance(timedelta(seconds=61))  # one SMS per holder per minute
    loss = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_CARD_LOSS, sms=True)
    await gw.stub.AuthorizeContinuedUse(
        pb.AuthorizeContinuedUseRequest(auth_token=loss), metadata=gw.a
    )
    reply = await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
    assert reply.card.status == pb.CARD_STATUS_LOST_CONTINUED_USE


async def test_a12_after_terminate_every_holder_operation_says_terminated(
    gw: GatewayUnderTest, holder: Person
) -> None:
    # Issue 10, defect 8: Authenticate said CARD_NOT_FOUND while Query said CARD_TERMINATED.
    unbind = await auth_token(
        gw, holder, gw.a, pb.BUSINESS_SCENARIO_UNBIND, sms=True, biometric=True
    )
    query = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    request = pb.TerminateRequest(auth_token=unbind, idempotency_key=key())
    ended = await gw.stub.Terminate(request, metadata=gw.a)
    # The same Terminate again (a client retry) gets the same answer.
    again = await gw.stub.Terminate(request, metadata=gw.a)
    assert again.card.essc_id == ended.card.essc_id

    answers = []
    for call in (
        gw.stub.Query(pb.QueryRequest(auth_token=query), metadata=gw.a),
        gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=holder.id_number,
                scenario=pb.BUSINESS_SCENARIO_VIEW_CARD,
                factors=pb.Factors(password=STRONG_PASSWORD),
            ),
            metadata=gw.a,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        error = rich(raised.value)
        answers.append((error.code, error.reason))
    assert answers == [(grpc.StatusCode.FAILED_PRECONDITION, "CARD_TERMINATED")] * 2
    # Another bank still learns nothing about this holder.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.RequestSmsCode(
            pb.RequestSmsCodeRequest(
                social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
            ),
            metadata=gw.b,
        )
    assert rich(raised.value).reason == "CARD_NOT_FOUND"
