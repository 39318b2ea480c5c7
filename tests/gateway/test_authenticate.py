"""Authentication by business scenario (A7, A8), initial password (K1, K3), SMS, lockout."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.domain.passwords import initial_password
from essc_gateway.simplatform import Person, Population
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    STRONG_PASSWORD,
    adult,
    auth_token,
    change_to_strong_password,
    issue,
    key,
    latest_sms_code,
    live_sample,
    rich,
)


@pytest.fixture
async def holder(gw: GatewayUnderTest, population: Population, clock: FakeClock) -> Person:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    return person


def _password_only(
    person: Person,
    password: str,
    scenario: pb.BusinessScenario.ValueType = pb.BUSINESS_SCENARIO_VIEW_CARD,
) -> pb.AuthenticateRequest:
    return pb.AuthenticateRequest(
        social_security_number=person.id_number,
        scenario=scenario,
        factors=pb.Factors(password=password),
    )


async def test_k1_the_initial_password_only_leads_to_a_password_change(
    gw: GatewayUnderTest, holder: Person
) -> None:
    response = await gw.stub.Authenticate(
        _password_only(holder, initial_password(holder.id_number)), metadata=gw.a
    )
    assert response.state == pb.AUTHENTICATION_STATE_PASSWORD_CHANGE_REQUIRED
    assert response.auth_token == ""


async def test_k1_an_id_ending_in_x_has_the_x_replaced_by_1_in_the_initial_password(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    today = clock.now().date()
    person = next(
        p
        for p in population.people
        if p.id_number.endswith("X")
        and p.civil_capacity == "FULL"
        and today.year - p.birth_date.year > 20
    )
    await issue(gw, person, gw.a, clock.now())
    password = initial_password(person.id_number)
    assert password.endswith("1")
    assert password == person.id_number[-8:-1] + "1"
    response = await gw.stub.Authenticate(_password_only(person, password), metadata=gw.a)
    assert response.state == pb.AUTHENTICATION_STATE_PASSWORD_CHANGE_REQUIRED


@pytest.mark.parametrize(
    ("new_password", "code"),
    [
        (None, "INITIAL_PASSWORD"),
        ("aaaaaaaa", "REPEATED_CHARACTER"),
        ("12345678", "SEQUENCE"),
        ("short1!", "LENGTH"),
    ],
)
async def test_k3_weak_new_passwords_are_refused(
    gw: GatewayUnderTest, holder: Person, new_password: str | None, code: str
) -> None:
    initial = initial_password(holder.id_number)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.ChangePassword(
            pb.ChangePasswordRequest(
                social_security_number=holder.id_number,
                current_password=initial,
                new_password=new_password or initial,
                idempotency_key=key(),
            ),
            metadata=gw.a,
        )
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {"new_password": code}


async def test_k3_after_the_change_the_new_password_authenticates(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    response = await gw.stub.Authenticate(_password_only(holder, STRONG_PASSWORD), metadata=gw.a)
    assert response.state == pb.AUTHENTICATION_STATE_AUTHENTICATED
    assert response.auth_token.startswith("at1.")
    assert list(response.verified_factors) == [pb.FACTOR_PASSWORD]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            _password_only(holder, initial_password(holder.id_number)), metadata=gw.a
        )
    assert rich(raised.value).reason == "FACTOR_REJECTED"


async def test_a8_each_scenario_requires_its_own_factors(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            _password_only(holder, STRONG_PASSWORD, pb.BUSINESS_SCENARIO_UNBIND), metadata=gw.a
        )
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {
        "factors.sms_code": "REQUIRED",
        "factors.biometric_sample": "REQUIRED",
    }


async def test_a8_payment_with_password_and_sms_code_from_the_inbox(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    token = await auth_token(gw, holder, gw.a, pb.BUSINESS_SCENARIO_PAYMENT, sms=True)
    assert token.startswith("at1.")


async def test_a8_a_bank_can_require_more_factors_for_a_scenario(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    # Bank B's policy (conftest) adds a biometric to QUERY_RECORDS.
    person = adult(population, clock.now().date(), skip=2)
    await issue(gw, person, gw.b, clock.now())
    await change_to_strong_password(gw, person, gw.b)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            _password_only(person, STRONG_PASSWORD, pb.BUSINESS_SCENARIO_QUERY_RECORDS),
            metadata=gw.b,
        )
    assert rich(raised.value).violations == {"factors.biometric_sample": "REQUIRED"}
    token = await auth_token(gw, person, gw.b, pb.BUSINESS_SCENARIO_QUERY_RECORDS, biometric=True)
    assert token


async def test_an_expired_sms_code_is_rejected(
    gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    await gw.stub.RequestSmsCode(
        pb.RequestSmsCodeRequest(
            social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
        ),
        metadata=gw.a,
    )
    code = await latest_sms_code(gw, holder)
    clock.advance(timedelta(minutes=6))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=holder.id_number,
                scenario=pb.BUSINESS_SCENARIO_PAYMENT,
                factors=pb.Factors(password=STRONG_PASSWORD, sms_code=code),
            ),
            metadata=gw.a,
        )
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.metadata["failed_factors"] == "SMS_CODE"
    assert error.metadata["sms_code_reason"] == "CODE_EXPIRED"


async def test_an_sms_code_for_one_scenario_does_not_serve_another(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    await gw.stub.RequestSmsCode(
        pb.RequestSmsCodeRequest(
            social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
        ),
        metadata=gw.a,
    )
    code = await latest_sms_code(gw, holder)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=holder.id_number,
                scenario=pb.BUSINESS_SCENARIO_CARD_LOSS,
                factors=pb.Factors(password=STRONG_PASSWORD, sms_code=code),
            ),
            metadata=gw.a,
        )
    assert rich(raised.value).metadata["failed_factors"] == "SMS_CODE"


async def test_repeated_wrong_factors_lock_the_holder_out_until_the_lock_expires(
    gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    remaining = []
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await gw.stub.Authenticate(_password_only(holder, "Wrong-Guess-1"), metadata=gw.a)
        error = rich(raised.value)
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        remaining.append(error.metadata["remaining_attempts"])
    assert remaining == ["4", "3", "2", "1", "0"]
    # Locked: even the right password is refused, with the time to wait.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(_password_only(holder, STRONG_PASSWORD), metadata=gw.a)
    locked = rich(raised.value)
    assert locked.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert locked.reason == "HOLDER_LOCKED_OUT"
    assert locked.retry_seconds == pytest.approx(30 * 60, abs=1)
    clock.advance(timedelta(minutes=31))
    response = await gw.stub.Authenticate(_password_only(holder, STRONG_PASSWORD), metadata=gw.a)
    assert response.state == pb.AUTHENTICATION_STATE_AUTHENTICATED


async def test_a_success_resets_the_count_of_wrong_factors(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    for _ in range(4):
        with pytest.raises(grpc.aio.AioRpcError):
            await gw.stub.Authenticate(_password_only(holder, "Wrong-Guess-1"), metadata=gw.a)
    await gw.stub.Authenticate(_password_only(holder, STRONG_PASSWORD), metadata=gw.a)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(_password_only(holder, "Wrong-Guess-1"), metadata=gw.a)
    assert rich(raised.value).metadata["remaining_attempts"] == "4"


async def test_a_bank_cannot_authenticate_another_banks_holder(
    gw: GatewayUnderTest, holder: Person
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(_password_only(holder, STRONG_PASSWORD), metadata=gw.b)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "CARD_NOT_FOUND"


async def test_a_wrong_biometric_is_rejected(gw: GatewayUnderTest, holder: Person) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=holder.id_number,
                scenario=pb.BUSINESS_SCENARIO_MEDICAL_SETTLEMENT,
                factors=pb.Factors(password=STRONG_PASSWORD, biometric_sample=bytes(32)),
            ),
            metadata=gw.a,
        )
    assert rich(raised.value).metadata["failed_factors"] == "BIOMETRIC"
    ok = await gw.stub.Authenticate(
        pb.AuthenticateRequest(
            social_security_number=holder.id_number,
            scenario=pb.BUSINESS_SCENARIO_MEDICAL_SETTLEMENT,
            factors=pb.Factors(password=STRONG_PASSWORD, biometric_sample=live_sample(holder, 9)),
        ),
        metadata=gw.a,
    )
    assert ok.state == pb.AUTHENTICATION_STATE_AUTHENTICATED


async def test_a_missing_scenario_is_a_field_violation(
    gw: GatewayUnderTest, holder: Person
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=holder.id_number, factors=pb.Factors(password="x")
            ),
            metadata=gw.a,
        )
    assert rich(raised.value).violations == {"scenario": "UNSPECIFIED"}


async def test_concurrent_guesses_cannot_get_past_the_lockout(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    results = await asyncio.gather(
        *(
            gw.stub.Authenticate(_password_only(holder, f"Wrong-Guess-{i}"), metadata=gw.a)
            for i in range(20)
        ),
        return_exceptions=True,
    )
    errors = [rich(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(errors) == 20
    rejected = [e for e in errors if e.reason == "FACTOR_REJECTED"]
    assert 1 <= len(rejected) <= 5  # never more checks than the lockout allows
    assert {e.reason for e in errors} <= {
        "FACTOR_REJECTED",
        "HOLDER_LOCKED_OUT",
        "FACTOR_CHECKS_IN_PROGRESS",
    }


async def test_a_client_that_gives_up_mid_call_does_not_break_the_store(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    for timeout in (0.002, 0.005, 0.01, 0.02, 0.03) * 4:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await gw.stub.Authenticate(
                _password_only(holder, STRONG_PASSWORD), metadata=gw.a, timeout=timeout
            )
    response = await gw.stub.Authenticate(_password_only(holder, STRONG_PASSWORD), metadata=gw.a)
    assert response.state == pb.AUTHENTICATION_STATE_AUTHENTICATED


async def test_sms_codes_are_throttled_per_holder(
    gw: GatewayUnderTest, holder: Person, clock: FakeClock
) -> None:
    request = pb.RequestSmsCodeRequest(
        social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
    )
    await gw.stub.RequestSmsCode(request, metadata=gw.a)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.RequestSmsCode(request, metadata=gw.a)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "SMS_THROTTLED"
    assert error.retry_seconds == pytest.approx(60, abs=1)
    clock.advance(timedelta(seconds=61))
    await gw.stub.RequestSmsCode(request, metadata=gw.a)


async def test_sms_codes_are_throttled_per_holder_whatever_the_scenario(
    gw: GatewayUnderTest, holder: Person
) -> None:
    # Issue 10, defect 7: the interval was per holder and scenario (6 SMS a minute).
    await gw.stub.RequestSmsCode(
        pb.RequestSmsCodeRequest(
            social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
        ),
        metadata=gw.a,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.RequestSmsCode(
            pb.RequestSmsCodeRequest(
                social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_UNBIND
            ),
            metadata=gw.a,
        )
    assert rich(raised.value).reason == "SMS_THROTTLED"


@pytest.mark.parametrize(
    "scenario",
    [
        pb.BUSINESS_SCENARIO_VIEW_CARD,
        pb.BUSINESS_SCENARIO_QUERY_RECORDS,
        pb.BUSINESS_SCENARIO_MEDICAL_SETTLEMENT,
    ],
)
async def test_a8_no_sms_is_sent_for_a_scenario_whose_factors_need_none(
    gw: GatewayUnderTest, holder: Person, scenario: pb.BusinessScenario
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.RequestSmsCode(
            pb.RequestSmsCodeRequest(social_security_number=holder.id_number, scenario=scenario),
            metadata=gw.a,
        )
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "SMS_NOT_REQUIRED"
    # Nothing was sent, so nothing is throttled: a scenario that needs one gets its code.
    await gw.stub.RequestSmsCode(
        pb.RequestSmsCodeRequest(
            social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
        ),
        metadata=gw.a,
    )


async def test_the_sms_attempt_cap_holds_through_the_gateway(
    gw: GatewayUnderTest, holder: Person
) -> None:
    await change_to_strong_password(gw, holder, gw.a)
    await gw.stub.RequestSmsCode(
        pb.RequestSmsCodeRequest(
            social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
        ),
        metadata=gw.a,
    )
    code = await latest_sms_code(gw, holder)
    wrong = "000000" if code != "000000" else "111111"
    reasons = []
    for guess in (wrong, wrong, wrong, code):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await gw.stub.Authenticate(
                pb.AuthenticateRequest(
                    social_security_number=holder.id_number,
                    scenario=pb.BUSINESS_SCENARIO_PAYMENT,
                    factors=pb.Factors(password=STRONG_PASSWORD, sms_code=guess),
                ),
                metadata=gw.a,
            )
        reasons.append(rich(raised.value).metadata["sms_code_reason"])
    assert reasons[-1] == "TOO_MANY_ATTEMPTS"  # the right code, too late


@pytest.mark.parametrize("rpc", ["RequestSmsCode", "ChangePassword"])
async def test_a_bank_cannot_act_on_another_banks_holder(
    gw: GatewayUnderTest, holder: Person, rpc: str
) -> None:
    request: object
    if rpc == "RequestSmsCode":
        request = pb.RequestSmsCodeRequest(
            social_security_number=holder.id_number, scenario=pb.BUSINESS_SCENARIO_PAYMENT
        )
    else:
        request = pb.ChangePasswordRequest(
            social_security_number=holder.id_number,
            current_password=initial_password(holder.id_number),
            new_password=STRONG_PASSWORD,
            idempotency_key=key(),
        )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await getattr(gw.stub, rpc)(request, metadata=gw.b)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "CARD_NOT_FOUND"
