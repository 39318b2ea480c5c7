"""Issue: consent (A1), verified identity (A2), one person one e-SSC (A3), guardians (A5)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.app import Gateway
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest, make_config
from tests.gateway.flows import (
    Metadata,
    Rich,
    adult,
    child_under_14,
    consent,
    guardian_of,
    identity,
    issue,
    issue_answers_lost,
    issue_request,
    key,
    live_sample,
    rich,
    verified_issue_request,
    verify,
)
from tests.sql import count, fetch


async def _issue_error(
    gw: GatewayUnderTest, request: pb.IssueRequest, meta: Metadata | None = None
) -> Rich:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Issue(request, metadata=meta or gw.a)
    return rich(raised.value)


async def _rows(database: StoreLocation, table: str) -> int:
    return await count(database, table)


async def test_a2_issue_after_verify_issues_an_active_card_with_a_masked_number(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    response = await issue(gw, person, gw.a, clock.now())
    assert response.outcome == pb.ISSUE_OUTCOME_ISSUED
    card = response.card
    assert card.essc_id
    assert card.status == pb.CARD_STATUS_ACTIVE
    assert card.physical_card_number_masked == "*****" + person.card_number[-4:]
    assert card.agreement_version == "2024-03-20"


async def test_a3_repeat_with_the_same_key_returns_the_same_card(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    k = key()
    first = await issue(gw, person, gw.a, clock.now(), idempotency_key=k)
    again = await issue(gw, person, gw.a, clock.now(), idempotency_key=k)
    assert again.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert again.card.essc_id == first.card.essc_id


async def test_a3_a_new_key_for_a_holder_of_this_bank_returns_the_existing_card(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    first = await issue(gw, person, gw.a, clock.now())
    second = await issue(gw, person, gw.a, clock.now())
    assert second.outcome == pb.ISSUE_OUTCOME_ALREADY_HELD
    assert second.card.essc_id == first.card.essc_id
    assert await _rows(database, "cards") == 1


async def test_a3_a_holder_of_another_bank_gets_a_conflict_and_nothing_is_written(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    verified = await verify(gw, person, gw.b)
    error = await _issue_error(
        gw,
        issue_request(person, verified.verification_token, consent(clock.now())),
        gw.b,
    )
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.reason == "CARD_HELD_BY_OTHER_BANK"
    assert await _rows(database, "cards") == 1
    assert await _rows(database, "issue_attempts") == 1  # bank A's only


async def test_a3_the_platform_refuses_a_second_card_even_when_the_gateway_store_is_new(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    # Bank B's gateway has its own empty store: only the platform knows about bank A's card.
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    other = Gateway(make_config(tmp_path / "other.db"), gw.gateway._platform_address, clock)
    port = await other.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            verified = await stub.Verify(
                pb.VerifyRequest(
                    applicant=identity(person),
                    physical_card_number=person.card_number,
                    biometric_sample=live_sample(person),
                ),
                metadata=gw.b,
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Issue(
                    issue_request(person, verified.verification_token, consent(clock.now())),
                    metadata=gw.b,
                )
        assert rich(raised.value).reason == "CARD_HELD_BY_OTHER_BANK"
        assert await _rows(tmp_path / "other.db", "issue_attempts") == 0
    finally:
        await other.stop(0)


@pytest.mark.parametrize(
    ("edit", "violations"),
    [
        (
            lambda c: c.ClearField("read_and_agreed"),
            {"consent.read_and_agreed": "CONSENT_NOT_GIVEN"},
        ),
        (lambda c: c.ClearField("authorized"), {"consent.authorized": "CONSENT_NOT_GIVEN"}),
        (lambda c: c.ClearField("channel"), {"consent.channel": "UNSPECIFIED"}),
        (lambda c: c.ClearField("accepted_at"), {"consent.accepted_at": "REQUIRED"}),
        (
            lambda c: c.__setattr__("agreement_version", "1999-01-01"),
            {"consent.agreement_version": "UNKNOWN_AGREEMENT_VERSION"},
        ),
    ],
)
async def test_a1_issue_needs_a_complete_consent(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    edit,
    violations,  # type: ignore[no-untyped-def]
    database: StoreLocation,
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    given = consent(clock.now())
    edit(given)
    error = await _issue_error(
        gw,
        issue_request(person, verified.verification_token, given),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == violations
    assert await _rows(database, "cards") == 0


@pytest.mark.parametrize(
    ("accepted_at", "reason"),
    [
        # Issue 10, defect 5: these were stored as the A1 evidence for version 2024-03-20.
        (datetime(1, 1, 1, tzinfo=UTC), "BEFORE_VERSION"),
        (datetime(1970, 1, 1, tzinfo=UTC), "BEFORE_VERSION"),
        (datetime(2020, 1, 1, tzinfo=UTC), "BEFORE_VERSION"),
        # The day before the version took effect in China (UTC+8).
        (datetime(2024, 3, 19, 15, 59, tzinfo=UTC), "BEFORE_VERSION"),
        # Long before the request (the test clock stands on 2026-11-02).
        (datetime(2026, 9, 1, tzinfo=UTC), "TOO_OLD"),
    ],
)
async def test_a1_a12_a_consent_dated_before_its_version_or_long_before_is_refused(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    database: StoreLocation,
    accepted_at: datetime,
    reason: str,
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    given = consent(clock.now())
    given.accepted_at.FromDatetime(accepted_at)
    error = await _issue_error(gw, issue_request(person, verified.verification_token, given))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {"consent.accepted_at": reason}
    assert await _rows(database, "cards") == 0
    assert await _rows(database, "issue_attempts") == 0  # nothing half-written


async def test_a1_missing_consent_is_a_field_violation(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    error = await _issue_error(
        gw,
        pb.IssueRequest(
            applicant=identity(person),
            verification_token=verified.verification_token,
            idempotency_key=key(),
        ),
    )
    assert error.violations == {"consent": "CONSENT_MISSING"}


async def test_a1_the_accepted_agreement_version_time_and_channel_are_recorded(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    accepted = clock.now() - timedelta(minutes=3)
    verified = await verify(gw, person, gw.a)
    await gw.stub.Issue(
        issue_request(person, verified.verification_token, consent(accepted)),
        metadata=gw.a,
    )
    [row] = await fetch(
        database, "SELECT consent_version, consent_accepted_at, consent_channel FROM cards"
    )
    assert tuple(row.values()) == ("2024-03-20", accepted.astimezone(UTC).isoformat(), "MOBILE_APP")


async def test_a5_a_child_under_14_needs_a_guardian(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    child = child_under_14(population, clock.now().date())
    verified = await verify(gw, child, gw.a)
    assert verified.verified
    assert verified.guardian_required
    error = await _issue_error(
        gw,
        issue_request(child, verified.verification_token, consent(clock.now())),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {"guardian": "GUARDIAN_REQUIRED"}


async def test_a5_a_child_under_14_is_issued_a_card_with_a_verified_adult_guardian(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    today = clock.now().date()
    child = child_under_14(population, today)
    parent = adult(population, today)
    response = await issue(gw, child, gw.a, clock.now(), guardian=guardian_of(parent))
    assert response.outcome == pb.ISSUE_OUTCOME_ISSUED


async def test_a5_a_guardian_who_is_not_who_they_claim_is_refused(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    today = clock.now().date()
    child = child_under_14(population, today)
    parent = adult(population, today)
    guardian = pb.Guardian(
        name=parent.name + "某",
        social_security_number=parent.id_number,
        mobile_phone=parent.mobile_phone,
        relation=pb.GUARDIAN_RELATION_PARENT,
        consents=True,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await issue(gw, child, gw.a, clock.now(), guardian=guardian)
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "GUARDIAN_NOT_VERIFIED"
    assert await _rows(database, "issue_attempts") == 0


async def test_a2_issue_needs_a_verification_token_of_the_same_bank(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.b)
    error = await _issue_error(
        gw,
        issue_request(person, verified.verification_token, consent(clock.now())),
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "VERIFICATION_TOKEN_INVALID"


async def test_a2_an_expired_verification_token_is_refused(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    clock.advance(timedelta(minutes=11))
    error = await _issue_error(
        gw,
        issue_request(person, verified.verification_token, consent(clock.now())),
    )
    assert error.reason == "VERIFICATION_TOKEN_EXPIRED"


async def test_a2_the_token_only_serves_the_person_it_verified(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    today = clock.now().date()
    verified = await verify(gw, adult(population, today), gw.a)
    error = await _issue_error(
        gw,
        pb.IssueRequest(
            applicant=identity(adult(population, today, skip=1)),
            verification_token=verified.verification_token,
            consent=consent(clock.now()),
            idempotency_key=key(),
        ),
    )
    assert error.reason == "VERIFICATION_MISMATCH"


async def test_an_idempotency_key_reused_for_another_request_is_refused(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    k = key()
    await issue(gw, person, gw.a, clock.now(), idempotency_key=k)
    verified = await verify(gw, person, gw.a)
    error = await _issue_error(
        gw,
        issue_request(
            person, verified.verification_token, consent(clock.now() - timedelta(minutes=1)), k
        ),
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "IDEMPOTENCY_KEY_REUSED"


async def test_concurrent_issues_with_one_key_give_one_card(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    request = await verified_issue_request(gw, person, gw.a, clock.now())
    results = await asyncio.gather(
        *(gw.stub.Issue(request, metadata=gw.a) for _ in range(8)), return_exceptions=True
    )
    cards = {r.card.essc_id for r in results if isinstance(r, pb.IssueResponse)}
    others = [rich(r).reason for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(cards) == 1
    assert set(others) <= {"REQUEST_IN_PROGRESS"}
    assert await _rows(database, "cards") == 1


async def test_nothing_is_half_written_when_the_platform_fails_during_issue(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    database: StoreLocation,
    platform: SimulatedPlatform,
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    await platform.stop(0)
    request = issue_request(person, verified.verification_token, consent(clock.now()))
    error = await _issue_error(gw, request)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert await _rows(database, "issue_attempts") == 0
    assert await _rows(database, "cards") == 0


async def test_a3_concurrent_issues_with_different_keys_give_one_card_and_no_error(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    requests = [
        issue_request(person, verified.verification_token, consent(clock.now())) for _ in range(6)
    ]
    results = await asyncio.gather(*(gw.stub.Issue(r, metadata=gw.a) for r in requests))
    assert {r.card.essc_id for r in results} == {results[0].card.essc_id}
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(pb.ISSUE_OUTCOME_ISSUED) == 1
    assert await _rows(database, "cards") == 1


async def test_the_identical_request_replays_even_after_its_token_expired(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    request = await verified_issue_request(gw, person, gw.a, clock.now())
    first = await gw.stub.Issue(request, metadata=gw.a)
    clock.advance(timedelta(minutes=30))
    again = await gw.stub.Issue(request, metadata=gw.a)
    assert again.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert again.card.essc_id == first.card.essc_id


@pytest.mark.parametrize(("seconds", "nanos"), [(0, 2_000_000_000), (0, -5), (10**12, 0)])
async def test_an_impossible_consent_time_is_a_field_violation(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, seconds: int, nanos: int
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    bad = consent(clock.now())
    bad.accepted_at.seconds, bad.accepted_at.nanos = seconds, nanos
    error = await _issue_error(
        gw,
        issue_request(person, verified.verification_token, bad),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {"consent.accepted_at": "OUT_OF_RANGE"}


async def test_a5_an_adult_without_civil_capacity_needs_a_guardian(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    today = clock.now().date()
    ward = next(
        p for p in population.people if p.civil_capacity == "NONE" and p.age_on(today) >= 18
    )
    verified = await verify(gw, ward, gw.a)
    assert verified.verified
    assert verified.civil_capacity == pb.CIVIL_CAPACITY_NONE
    assert verified.guardian_required
    error = await _issue_error(
        gw,
        issue_request(ward, verified.verification_token, consent(clock.now())),
    )
    assert error.violations == {"guardian": "GUARDIAN_REQUIRED"}


async def test_an_issue_in_doubt_is_kept_and_settled_by_a_retry_with_its_key(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    verified = await verify(gw, person, gw.a)
    await issue_answers_lost(gw)
    request = issue_request(person, verified.verification_token, consent(clock.now()))
    error = await _issue_error(gw, request)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.metadata["outcome"] == "IN_DOUBT"
    status = await gw.stub.GetIssueStatus(
        pb.GetIssueStatusRequest(idempotency_key=request.idempotency_key), metadata=gw.a
    )
    assert status.state == pb.ISSUE_STATE_IN_DOUBT  # not forgotten, not "not found"
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    settled = await gw.stub.Issue(request, metadata=gw.a)
    assert settled.outcome == pb.ISSUE_OUTCOME_ISSUED  # the platform's replay, recorded
    assert await _rows(database, "cards") == 1
