"""The simulated platform over a real gRPC connection (127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.domain.citizen_id import check_character
from essc_gateway.simplatform import (
    Person,
    Population,
    SimulatedPlatform,
    biometric_sample,
    generate_population,
    run_platform,
)
from essc_gateway.testing import FakeClock
from tests.polling import eventually

ESSC_ID = re.compile(r"E[0-9A-F]{20}")
CARD_NUMBER = re.compile(r"[A-Z][0-9]{8}")
CHECK_REAL_NAME = "/essc.platform.v1.IdentityService/CheckRealName"


@dataclass(frozen=True)
class Stubs:
    identity: pb_grpc.IdentityServiceAsyncStub
    cards: pb_grpc.CardServiceAsyncStub
    auth: pb_grpc.AuthServiceAsyncStub
    records: pb_grpc.RecordsServiceAsyncStub
    control: pb_grpc.ControlServiceAsyncStub


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(size=400)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def platform(population: Population, clock: FakeClock) -> AsyncIterator[SimulatedPlatform]:
    async with SimulatedPlatform(population, clock=clock, rng=random.Random(11)) as running:
        yield running


@pytest.fixture
async def channel(platform: SimulatedPlatform) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(platform.address) as opened:
        yield opened


@pytest.fixture
def stubs(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        identity=pb_grpc.IdentityServiceStub(channel),
        cards=pb_grpc.CardServiceStub(channel),
        auth=pb_grpc.AuthServiceStub(channel),
        records=pb_grpc.RecordsServiceStub(channel),
        control=pb_grpc.ControlServiceStub(channel),
    )


@pytest.fixture
def adult(population: Population) -> Person:
    return population.samples(population.as_of, 1)[0]


def ms(milliseconds: int) -> Duration:
    return Duration(nanos=milliseconds * 1_000_000)


def unknown_id(population: Population) -> str:
    """A valid-looking ID that the register does not hold."""
    for sequence in range(1, 1000):
        candidate = f"11010119800101{sequence:03d}"
        id_number = candidate + check_character(candidate)
        if population.by_id(id_number) is None:
            return id_number
    raise AssertionError("no free ID")


def issue_request(person: Person, key: str, bank: str = "bank-a") -> pb.IssueCardRequest:
    return pb.IssueCardRequest(
        idempotency_key=f"{bank}:{key}",
        bank_id=bank,
        id_number=person.id_number,
        name=person.name,
        mobile_phone=person.mobile_phone,
        card_number=person.card_number,
    )


async def get_card(stubs: Stubs, essc_id: str) -> pb.Card:
    return (await stubs.cards.GetCard(pb.GetCardRequest(essc_id=essc_id))).card


async def report_lost(stubs: Stubs, person: Person) -> None:
    await stubs.control.ReportCardLost(pb.ReportCardLostRequest(id_number=person.id_number))


async def check_card(stubs: Stubs, id_number: str, card_number: str) -> pb.CheckResult:
    request = pb.CheckRealCardRequest(id_number=id_number, card_number=card_number)
    return (await stubs.identity.CheckRealCard(request)).result


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "essc.platform.v1.CardService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_empty_id_number_is_invalid_argument(stubs: Stubs) -> None:
    error = await rpc_error(stubs.identity.CheckRealName(pb.CheckRealNameRequest(name="x")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "id_number is required"


async def test_unknown_person_or_card_is_not_found(stubs: Stubs, population: Population) -> None:
    nobody = unknown_id(population)
    for call in (
        stubs.cards.GetCard(pb.GetCardRequest(essc_id="E" + "0" * 20)),
        stubs.control.ReportCardLost(pb.ReportCardLostRequest(id_number=nobody)),
        stubs.control.ReplaceCard(pb.ReplaceCardRequest(id_number=nobody)),
        stubs.auth.VerifyPassword(pb.VerifyPasswordRequest(id_number=nobody, password="12345678")),
        stubs.auth.SendSmsCode(pb.SendSmsCodeRequest(id_number=nobody, purpose="LOGIN")),
        stubs.records.GetAccounts(pb.GetAccountsRequest(id_number=nobody)),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert nobody not in (error.details() or "")
        assert "12345678" not in (error.details() or "")


async def test_real_name_check_reasons_a2(
    stubs: Stubs, adult: Person, population: Population
) -> None:
    async def check(name: str, id_number: str, phone: str) -> pb.CheckRealNameResponse:
        return await stubs.identity.CheckRealName(
            pb.CheckRealNameRequest(name=name, id_number=id_number, mobile_phone=phone)
        )

    passed = await check(adult.name, adult.id_number, adult.mobile_phone)
    assert passed.result.passed
    assert passed.civil_capacity == pb.CIVIL_CAPACITY_FULL
    wrong_name = await check(adult.name + "华", adult.id_number, adult.mobile_phone)
    assert (wrong_name.result.passed, wrong_name.result.reason) == (False, "NAME_MISMATCH")
    assert wrong_name.civil_capacity == pb.CIVIL_CAPACITY_FULL
    wrong_phone = await check(adult.name, adult.id_number, "+8613800138000")
    assert wrong_phone.result.reason == "PHONE_MISMATCH"
    nobody = await check(adult.name, unknown_id(population), adult.mobile_phone)
    assert nobody.result.reason == "PERSON_NOT_FOUND"
    assert nobody.civil_capacity == pb.CIVIL_CAPACITY_UNSPECIFIED

    child = population.find(lambda p: p.age_on(population.as_of) < 8)
    reply = await check(child.name, child.id_number, child.mobile_phone)
    assert reply.civil_capacity == pb.CIVIL_CAPACITY_NONE


async def test_real_card_check_reasons_a2(
    stubs: Stubs, adult: Person, population: Population
) -> None:
    assert (await check_card(stubs, adult.id_number, adult.card_number)).passed
    mismatch = await check_card(stubs, adult.id_number, "A00000000")
    assert mismatch.reason == "CARD_NUMBER_MISMATCH"
    nobody = await check_card(stubs, unknown_id(population), adult.card_number)
    assert nobody.reason == "PERSON_NOT_FOUND"
    await report_lost(stubs, adult)
    lost = await check_card(stubs, adult.id_number, adult.card_number)
    assert lost.reason == "CARD_REPORTED_LOST"


async def test_real_person_check_reasons_a2(
    stubs: Stubs, adult: Person, population: Population
) -> None:
    rng = random.Random(3)

    async def check(id_number: str, sample: bytes) -> pb.CheckResult:
        reply = await stubs.identity.CheckRealPerson(
            pb.CheckRealPersonRequest(id_number=id_number, biometric_sample=sample)
        )
        return reply.result

    live = biometric_sample(adult, rng)
    assert (await check(adult.id_number, live)).passed
    assert (await check(adult.id_number, rng.randbytes(32))).reason == "BIOMETRIC_MISMATCH"
    assert (await check(unknown_id(population), live)).reason == "PERSON_NOT_FOUND"


async def test_issue_is_idempotent_by_key(stubs: Stubs, adult: Person, clock: FakeClock) -> None:
    first = await stubs.cards.IssueCard(issue_request(adult, "k1"))
    assert first.outcome == pb.ISSUE_OUTCOME_ISSUED
    assert ESSC_ID.fullmatch(first.card.essc_id)
    assert first.card.status == pb.CARD_STATUS_ACTIVE
    assert first.card.bank_id == "bank-a"
    assert first.card.card_number == adult.card_number
    assert first.card.issued_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now()
    assert not first.card.HasField("terminated_at")

    again = await stubs.cards.IssueCard(issue_request(adult, "k1"))
    assert again.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert again.card == first.card


async def test_one_person_one_card_a3(stubs: Stubs, adult: Person) -> None:
    first = await stubs.cards.IssueCard(issue_request(adult, "k1"))
    same_bank = await stubs.cards.IssueCard(issue_request(adult, "k2"))
    assert same_bank.outcome == pb.ISSUE_OUTCOME_ALREADY_HELD
    assert same_bank.card.essc_id == first.card.essc_id
    other_bank = await stubs.cards.IssueCard(issue_request(adult, "k1", bank="bank-b"))
    assert other_bank.outcome == pb.ISSUE_OUTCOME_ALREADY_HELD
    assert other_bank.card.essc_id == first.card.essc_id
    assert other_bank.card.bank_id == "bank-a"


async def test_issue_refusals_carry_no_personal_data(
    stubs: Stubs, adult: Person, population: Population
) -> None:
    request = issue_request(adult, "k1")
    request.id_number = unknown_id(population)
    assert (await rpc_error(stubs.cards.IssueCard(request))).code() == grpc.StatusCode.NOT_FOUND
    for field, value in (
        ("name", adult.name + "华"),
        ("mobile_phone", "+8613800138000"),
        ("card_number", "A00000000"),
    ):
        request = issue_request(adult, f"k-{field}")
        setattr(request, field, value)
        mismatch = await rpc_error(stubs.cards.IssueCard(request))
        assert mismatch.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = mismatch.details() or ""
        for secret in (adult.name, adult.id_number, adult.mobile_phone, adult.card_number):
            assert secret not in details

    no_key = issue_request(adult, "")
    no_key.idempotency_key = ""
    invalid = await rpc_error(stubs.cards.IssueCard(no_key))
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_guardian_must_be_a_known_adult_a5(
    stubs: Stubs, adult: Person, population: Population
) -> None:
    child = population.find(lambda p: p.age_on(population.as_of) < 14)
    request = issue_request(child, "k1")
    request.guardian_id_number = unknown_id(population)
    refused = await rpc_error(stubs.cards.IssueCard(request))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    request.guardian_id_number = adult.id_number
    issued = await stubs.cards.IssueCard(request)
    assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED


async def test_loss_continued_use_and_replacement_a6(stubs: Stubs, adult: Person) -> None:
    """A6: lost card suspends the e-SSC; the holder may authorise continued use; the new
    physical card carries the same e-SSC, no unbinding or re-application."""
    issued = (await stubs.cards.IssueCard(issue_request(adult, "k1"))).card
    essc_id = issued.essc_id

    await report_lost(stubs, adult)
    assert (await get_card(stubs, essc_id)).status == pb.CARD_STATUS_SUSPENDED

    authorise = pb.AuthorizeContinuedUseRequest(essc_id=essc_id)
    card = (await stubs.cards.AuthorizeContinuedUse(authorise)).card
    assert card.status == pb.CARD_STATUS_LOST_CONTINUED_USE
    assert (await stubs.cards.AuthorizeContinuedUse(authorise)).card == card  # idempotent

    replaced = await stubs.control.ReplaceCard(pb.ReplaceCardRequest(id_number=adult.id_number))
    new_number = replaced.new_card_number
    assert CARD_NUMBER.fullmatch(new_number)
    assert new_number != adult.card_number
    card = await get_card(stubs, essc_id)
    assert card.essc_id == essc_id
    assert card.card_number == new_number
    assert card.status == pb.CARD_STATUS_ACTIVE
    assert card.issued_at == issued.issued_at

    assert (await check_card(stubs, adult.id_number, new_number)).passed
    old_card = await check_card(stubs, adult.id_number, adult.card_number)
    assert old_card.reason == "CARD_NUMBER_MISMATCH"
    # The same key still replays, now with the card as it is (A6).
    replay = await stubs.cards.IssueCard(issue_request(adult, "k1"))
    assert replay.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert replay.card.card_number == new_number


async def test_continued_use_needs_a_suspended_card_a6(stubs: Stubs, adult: Person) -> None:
    issued = (await stubs.cards.IssueCard(issue_request(adult, "k1"))).card
    error = await rpc_error(
        stubs.cards.AuthorizeContinuedUse(pb.AuthorizeContinuedUseRequest(essc_id=issued.essc_id))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_card_lost_before_issue_is_issued_suspended_a6(stubs: Stubs, adult: Person) -> None:
    await report_lost(stubs, adult)
    issued = await stubs.cards.IssueCard(issue_request(adult, "k1"))
    assert issued.card.status == pb.CARD_STATUS_SUSPENDED


async def test_terminate_by_issuing_bank_then_reissue(
    stubs: Stubs, adult: Person, clock: FakeClock
) -> None:
    issued = (await stubs.cards.IssueCard(issue_request(adult, "k1"))).card

    def terminate(bank: str, key: str) -> Awaitable[pb.TerminateCardResponse]:
        return stubs.cards.TerminateCard(
            pb.TerminateCardRequest(essc_id=issued.essc_id, bank_id=bank, idempotency_key=key)
        )

    denied = await rpc_error(terminate("bank-b", "bank-b:t1"))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    clock.advance(timedelta(days=1))
    ended = (await terminate("bank-a", "bank-a:t1")).card
    assert ended.status == pb.CARD_STATUS_TERMINATED
    assert ended.HasField("terminated_at")
    clock.advance(timedelta(days=1))
    assert (await terminate("bank-a", "bank-a:t1")).card == ended
    assert (await terminate("bank-a", "bank-a:t2")).card == ended

    reissued = await stubs.cards.IssueCard(issue_request(adult, "k2", bank="bank-b"))
    assert reissued.outcome == pb.ISSUE_OUTCOME_ISSUED
    assert reissued.card.essc_id != issued.essc_id
    assert reissued.card.bank_id == "bank-b"
    assert (await get_card(stubs, issued.essc_id)).status == pb.CARD_STATUS_TERMINATED


async def test_initial_password_then_change_k1(stubs: Stubs, population: Population) -> None:
    holder = population.find(lambda p: p.id_number.endswith("X"))
    initial = holder.id_number[-8:-1] + "1"  # K1: trailing X becomes 1

    async def verify(password: str) -> pb.VerifyPasswordResponse:
        return await stubs.auth.VerifyPassword(
            pb.VerifyPasswordRequest(id_number=holder.id_number, password=password)
        )

    first = await verify(initial)
    assert (first.matched, first.is_initial) == (True, True)
    assert not (await verify(holder.id_number[-8:])).matched

    def change(current: str, key: str) -> Awaitable[pb.ChangePasswordResponse]:
        return stubs.auth.ChangePassword(
            pb.ChangePasswordRequest(
                id_number=holder.id_number,
                current_password=current,
                new_password="Blue-Harbour-7",
                idempotency_key=key,
            )
        )

    wrong = await change("nope", "c0")
    assert (wrong.changed, wrong.reason) == (False, "WRONG_CURRENT_PASSWORD")
    assert not wrong.HasField("changed_at")
    changed = await change(initial, "c1")
    assert changed.changed
    assert changed.HasField("changed_at")
    assert await change(initial, "c1") == changed  # replay by key

    new = await verify("Blue-Harbour-7")
    assert (new.matched, new.is_initial) == (True, False)
    assert not (await verify(initial)).matched


async def send_and_read(stubs: Stubs, person: Person, purpose: str) -> pb.SmsMessage:
    await stubs.auth.SendSmsCode(pb.SendSmsCodeRequest(id_number=person.id_number, purpose=purpose))
    inbox = await stubs.control.ReadSmsInbox(
        pb.ReadSmsInboxRequest(mobile_phone=person.mobile_phone)
    )
    return inbox.messages[-1]


def verify_sms(
    stubs: Stubs, person: Person, code: str, purpose: str
) -> Awaitable[pb.VerifySmsCodeResponse]:
    return stubs.auth.VerifySmsCode(
        pb.VerifySmsCodeRequest(id_number=person.id_number, code=code, purpose=purpose)
    )


async def test_sms_inbox_and_single_use(stubs: Stubs, adult: Person, clock: FakeClock) -> None:
    sent = await stubs.auth.SendSmsCode(
        pb.SendSmsCodeRequest(id_number=adult.id_number, purpose="LOGIN")
    )
    assert sent.expires_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == (
        clock.now() + timedelta(minutes=5)
    )
    clock.advance(timedelta(seconds=1))
    payment = await send_and_read(stubs, adult, "PAYMENT")
    inbox = await stubs.control.ReadSmsInbox(
        pb.ReadSmsInboxRequest(mobile_phone=adult.mobile_phone)
    )
    assert [m.purpose for m in inbox.messages] == ["LOGIN", "PAYMENT"]  # oldest first
    assert inbox.messages[1].sent_at.seconds - inbox.messages[0].sent_at.seconds == 1
    assert all(re.fullmatch(r"[0-9]{6}", m.code) for m in inbox.messages)
    login = inbox.messages[0]

    # A code verifies only for its own purpose (A8), and only once.
    other = await verify_sms(stubs, adult, login.code, "UNBIND")
    assert (other.matched, other.reason) == (False, "NO_CODE_SENT")
    assert (await verify_sms(stubs, adult, login.code, "LOGIN")).matched
    again = await verify_sms(stubs, adult, login.code, "LOGIN")
    assert (again.matched, again.reason) == (False, "NO_CODE_SENT")
    assert (await verify_sms(stubs, adult, payment.code, "PAYMENT")).matched
    empty = await stubs.control.ReadSmsInbox(pb.ReadSmsInboxRequest(mobile_phone="+8613000000000"))
    assert list(empty.messages) == []


async def test_sms_code_expires(stubs: Stubs, adult: Person, clock: FakeClock) -> None:
    first = await send_and_read(stubs, adult, "LOGIN")
    clock.advance(timedelta(minutes=5))
    expired = await verify_sms(stubs, adult, first.code, "LOGIN")
    assert (expired.matched, expired.reason) == (False, "CODE_EXPIRED")

    second = await send_and_read(stubs, adult, "LOGIN")
    clock.advance(timedelta(minutes=4, seconds=59))
    assert (await verify_sms(stubs, adult, second.code, "LOGIN")).matched


async def test_sms_attempts_are_capped(stubs: Stubs, adult: Person, clock: FakeClock) -> None:
    nothing = await verify_sms(stubs, adult, "123456", "LOGIN")
    assert (nothing.matched, nothing.reason) == (False, "NO_CODE_SENT")
    sent = await send_and_read(stubs, adult, "LOGIN")
    wrong = "000000" if sent.code != "000000" else "111111"
    for _ in range(3):
        reply = await verify_sms(stubs, adult, wrong, "LOGIN")
        assert (reply.matched, reply.reason) == (False, "CODE_MISMATCH")
    burnt = await verify_sms(stubs, adult, sent.code, "LOGIN")
    assert (burnt.matched, burnt.reason) == (False, "TOO_MANY_ATTEMPTS")

    # A new code does not buy new guesses: the wrong tries count until they are a TTL old.
    fresh = await send_and_read(stubs, adult, "LOGIN")
    still = await verify_sms(stubs, adult, fresh.code, "LOGIN")
    assert (still.matched, still.reason) == (False, "TOO_MANY_ATTEMPTS")
    clock.advance(timedelta(minutes=5))
    fresh = await send_and_read(stubs, adult, "LOGIN")
    assert (await verify_sms(stubs, adult, fresh.code, "LOGIN")).matched


async def test_new_sms_code_replaces_the_earlier_one(stubs: Stubs, adult: Person) -> None:
    first = await send_and_read(stubs, adult, "LOGIN")
    second = await send_and_read(stubs, adult, "LOGIN")
    if first.code != second.code:
        stale = await verify_sms(stubs, adult, first.code, "LOGIN")
        assert stale.reason == "CODE_MISMATCH"
    assert (await verify_sms(stubs, adult, second.code, "LOGIN")).matched


async def test_verify_biometric(stubs: Stubs, adult: Person) -> None:
    rng = random.Random(9)

    async def verify(sample: bytes) -> bool:
        request = pb.VerifyBiometricRequest(id_number=adult.id_number, biometric_sample=sample)
        return (await stubs.auth.VerifyBiometric(request)).matched

    assert await verify(biometric_sample(adult, rng))
    assert not await verify(rng.randbytes(32))


async def test_records(stubs: Stubs, adult: Person, population: Population) -> None:
    async def status_of(person: Person) -> int:
        request = pb.GetPersonalStatusRequest(id_number=person.id_number)
        return (await stubs.records.GetPersonalStatus(request)).status

    assert await status_of(adult) == pb.PERSONAL_STATUS_EMPLOYED
    retired = population.find(lambda p: p.personal_status == "RETIRED")
    assert await status_of(retired) == pb.PERSONAL_STATUS_RETIRED

    request = pb.GetContributionsRequest(id_number=adult.id_number)
    records = (await stubs.records.GetContributions(request)).records
    assert [
        (
            pb.InsuranceType.Name(r.insurance_type),
            r.period,
            r.base_fen,
            r.employer_fen,
            r.personal_fen,
        )
        for r in records
    ] == [
        (f"INSURANCE_TYPE_{c.insurance_type}", c.period, c.base_fen, c.employer_fen, c.personal_fen)
        for c in adult.contributions
    ]
    accounts = await stubs.records.GetAccounts(pb.GetAccountsRequest(id_number=adult.id_number))
    assert (accounts.pension_balance_fen, accounts.medical_balance_fen) == (
        adult.pension_balance_fen,
        adult.medical_balance_fen,
    )
    request_q = pb.GetQualificationsRequest(id_number=adult.id_number)
    qualifications = (await stubs.records.GetQualifications(request_q)).qualifications
    assert [(q.title, q.level, q.certificate_number, q.issued_on) for q in qualifications] == [
        (q.title, q.level, q.certificate_number, q.issued_on) for q in adult.qualifications
    ]


async def test_same_seed_gives_the_same_essc_ids(population: Population, adult: Person) -> None:
    essc_ids = []
    for _ in range(2):
        async with (
            SimulatedPlatform(population, clock=FakeClock()) as platform,
            grpc.aio.insecure_channel(platform.address) as channel,
        ):
            cards = pb_grpc.CardServiceStub(channel)
            reply = await cards.IssueCard(issue_request(adult, "k1"))
            essc_ids.append(reply.card.essc_id)
    assert essc_ids[0] == essc_ids[1]


async def test_run_platform_serves_until_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(run_platform("127.0.0.1", 0, seed=5, size=20))
    output: list[str] = []

    def listening() -> bool:
        output.append(capsys.readouterr().out)
        return "platform listening on" in "".join(output) or task.done()

    await eventually(listening)
    match = re.fullmatch(
        r"platform listening on 127\.0\.0\.1:([0-9]+) \(control on 127\.0\.0\.1:([0-9]+)\)\n",
        "".join(output),
    )
    assert match is not None
    for port in match.groups():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
