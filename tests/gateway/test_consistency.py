"""One answer for one situation (issue 10, defect 8)."""

from __future__ import annotations

import base64
from datetime import date

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.simplatform import Population
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    adult,
    auth_token,
    change_to_strong_password,
    child_under_14,
    identity,
    issue,
    live_sample,
    rich,
)


async def test_a5_verify_of_an_unknown_child_says_a_guardian_is_required(
    gw: GatewayUnderTest, population: Population, today: date
) -> None:
    child = child_under_14(population, today)
    request = pb.VerifyRequest(
        applicant=identity(child),
        physical_card_number=child.card_number,
        biometric_sample=live_sample(child),
    )
    request.applicant.name = "张冒名"  # the register does not know this name with this ID
    response = await gw.stub.Verify(request, metadata=gw.a)
    assert response.real_name.reason == "NAME_OR_ID_MISMATCH"
    assert response.civil_capacity == pb.CIVIL_CAPACITY_UNSPECIFIED
    # Under 14 follows from the ID number the bank itself sent.
    assert response.guardian_required


async def test_a_bank_calling_the_operator_service_gets_its_own_reason(
    gw: GatewayUnderTest,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.ListMaintenance(opb.ListMaintenanceRequest(), metadata=gw.a)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "NOT_AN_OPERATOR"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.ListMaintenance(opb.ListMaintenanceRequest())
    assert rich(raised.value).reason == "OPERATOR_UNAUTHENTICATED"


async def test_two_authorization_headers_are_refused_whichever_is_valid(
    gw: GatewayUnderTest,
) -> None:
    for headers in ((*gw.a, ("authorization", "Bearer wrong")), gw.a + gw.b):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await gw.stub.GetIssueStatus(
                pb.GetIssueStatusRequest(idempotency_key="k" * 32), metadata=headers
            )
        error = rich(raised.value)
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        assert error.reason == "BANK_UNAUTHENTICATED"


def _other_spellings(token: str) -> list[str]:
    """The same bytes spelled otherwise: a stray character the decoder skips, spare bits set,
    padding added."""
    kind, _, encoded = token.partition(".")
    blob = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    spellings = [f"{kind}.{encoded[:5]}!{encoded[5:]}", f"{kind}.{encoded}=="]
    if len(blob) % 3:  # the last character carries spare bits
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet.index(encoded[-1])
        spellings.append(f"{kind}.{encoded[:-1]}{alphabet[last | 1]}")
    return [s for s in spellings if s != token]


async def test_tokens_are_accepted_in_their_canonical_spelling_only(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    await change_to_strong_password(gw, person, gw.a)
    token = await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
    for spelling in _other_spellings(token):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await gw.stub.Query(pb.QueryRequest(auth_token=spelling), metadata=gw.a)
        error = rich(raised.value)
        assert error.code == grpc.StatusCode.UNAUTHENTICATED, spelling
        assert error.reason == "AUTH_TOKEN_INVALID", spelling


@pytest.mark.parametrize(
    "name", ["Rene\u0301", "阿依古丽・买买提", "阿依古丽‧买买提", "阿依古丽．买买提"]
)
async def test_a_name_in_decomposed_form_or_with_another_dot_is_valid_input(
    gw: GatewayUnderTest, population: Population, today: date, name: str
) -> None:
    person = adult(population, today)
    request = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    request.applicant.name = name
    # Validated after normalising: the register is asked (and knows no such name for
    # this ID) instead of the request being refused as INVALID_ARGUMENT.
    response = await gw.stub.Verify(request, metadata=gw.a)
    assert response.real_name.reason == "NAME_OR_ID_MISMATCH"
