"""Steps of the bank's flows, shared by the end-to-end tests."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from essc.gateway.v1 import gateway_pb2 as pb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.domain.passwords import initial_password
from essc_gateway.simplatform import Person, Population, biometric_sample
from tests.conftest import GatewayUnderTest

Metadata = tuple[tuple[str, str], ...]
STRONG_PASSWORD = "Tr1cky-Harbour!"


@dataclass
class Rich:
    """A failed call's status with its google.rpc details decoded."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: dict[str, str] = field(default_factory=dict)
    retry_seconds: float | None = None


def rich(error: grpc.aio.AioRpcError) -> Rich:
    result = Rich(code=error.code(), message=error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                result.reason, result.metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                result.violations = {v.field: v.reason for v in bad.field_violations}
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                result.retry_seconds = retry.retry_delay.ToTimedelta().total_seconds()
    return result


def pick(population: Population, today: date, test: Callable[[Person], bool]) -> Person:
    for person in population.people:
        if test(person):
            return person
    raise LookupError("no such person in the test population")


def adult(population: Population, today: date, skip: int = 0) -> Person:
    adults = [
        p for p in population.people if p.civil_capacity == "FULL" and 18 <= _age(p, today) < 60
    ]
    return adults[skip]


def child_under_14(population: Population, today: date) -> Person:
    return pick(population, today, lambda p: _age(p, today) < 14)


def _age(person: Person, today: date) -> int:
    born = person.birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def identity(person: Person) -> pb.Identity:
    # National format: the gateway must accept it and store E.164.
    return pb.Identity(
        name=person.name,
        social_security_number=person.id_number,
        mobile_phone=person.mobile_phone.removeprefix("+86"),
    )


def live_sample(person: Person, seed: int = 1) -> bytes:
    return biometric_sample(person, random.Random(seed))


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def consent(now: datetime, version: str = "2024-03-20") -> pb.Consent:
    return pb.Consent(
        agreement_version=version,
        accepted_at=ts(now),
        channel=pb.CONSENT_CHANNEL_MOBILE_APP,
        read_and_agreed=True,
        authorized=True,
    )


async def verify(gw: GatewayUnderTest, person: Person, meta: Metadata) -> pb.VerifyResponse:
    return await gw.stub.Verify(
        pb.VerifyRequest(
            applicant=identity(person),
            physical_card_number=person.card_number,
            biometric_sample=live_sample(person),
        ),
        metadata=meta,
    )


def guardian_of(
    parent: Person, relation: pb.GuardianRelation.ValueType = pb.GUARDIAN_RELATION_PARENT
) -> pb.Guardian:
    """`parent` as the consenting guardian of an applicant (A5)."""
    return pb.Guardian(
        name=parent.name,
        social_security_number=parent.id_number,
        mobile_phone=parent.mobile_phone,
        relation=relation,
        consents=True,
    )


def key() -> str:
    return uuid.uuid4().hex


def issue_request(
    person: Person,
    verification_token: str,
    given: pb.Consent,
    idempotency_key: str | None = None,
    guardian: pb.Guardian | None = None,
) -> pb.IssueRequest:
    """An Issue request for `person`, a fresh idempotency key unless one is given."""
    return pb.IssueRequest(
        applicant=identity(person),
        verification_token=verification_token,
        consent=given,
        idempotency_key=idempotency_key or key(),
        guardian=guardian,
    )


async def verified_issue_request(
    gw: GatewayUnderTest,
    person: Person,
    meta: Metadata,
    now: datetime,
    idempotency_key: str | None = None,
    guardian: pb.Guardian | None = None,
) -> pb.IssueRequest:
    """An Issue request for `person`, verified through the gateway first, consent given `now`."""
    verified = await verify(gw, person, meta)
    assert verified.verified
    return issue_request(
        person, verified.verification_token, consent(now), idempotency_key, guardian
    )


async def issue(
    gw: GatewayUnderTest,
    person: Person,
    meta: Metadata,
    now: datetime,
    idempotency_key: str | None = None,
    guardian: pb.Guardian | None = None,
) -> pb.IssueResponse:
    request = await verified_issue_request(gw, person, meta, now, idempotency_key, guardian)
    return await gw.stub.Issue(request, metadata=meta)


async def latest_sms_code(gw: GatewayUnderTest, person: Person) -> str:
    inbox = await gw.control.ReadSmsInbox(ppb.ReadSmsInboxRequest(mobile_phone=person.mobile_phone))
    return inbox.messages[-1].code


async def change_to_strong_password(gw: GatewayUnderTest, person: Person, meta: Metadata) -> None:
    await gw.stub.ChangePassword(
        pb.ChangePasswordRequest(
            social_security_number=person.id_number,
            current_password=initial_password(person.id_number),
            new_password=STRONG_PASSWORD,
            idempotency_key=key(),
        ),
        metadata=meta,
    )


async def auth_token(
    gw: GatewayUnderTest,
    person: Person,
    meta: Metadata,
    scenario: pb.BusinessScenario.ValueType,
    *,
    sms: bool = False,
    biometric: bool = False,
) -> str:
    """Authenticates a holder whose password was already changed."""
    code = ""
    if sms:
        await gw.stub.RequestSmsCode(
            pb.RequestSmsCodeRequest(social_security_number=person.id_number, scenario=scenario),
            metadata=meta,
        )
        code = await latest_sms_code(gw, person)
    response = await gw.stub.Authenticate(
        pb.AuthenticateRequest(
            social_security_number=person.id_number,
            scenario=scenario,
            factors=pb.Factors(
                password=STRONG_PASSWORD,
                sms_code=code,
                biometric_sample=live_sample(person, 3) if biometric else b"",
            ),
        ),
        metadata=meta,
    )
    assert response.state == pb.AUTHENTICATION_STATE_AUTHENTICATED
    return response.auth_token


async def issue_answers_lost(gw: GatewayUnderTest) -> None:
    """From now on IssueCard runs but its answer is lost, and the platform cannot say what
    became of a key (GetOperation down): every Issue ends in doubt."""
    scenario = ppb.FaultScenario(seed=1)
    scenario.rules.add(
        method="/essc.platform.v1.CardService/IssueCard", answer_lost=ppb.AnswerLostFault()
    )
    scenario.rules.add(
        method="/essc.platform.v1.OperationService/GetOperation", outage=ppb.OutageFault()
    )
    await gw.control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))
