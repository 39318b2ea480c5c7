"""A14 erasure: crypto-shredding plus deletion of every row naming the holder, no readable
copy left in the database's files, the erasure in the evidence log, earlier records still
verifiable but leading to nobody, and the person unknown afterwards. Refused, changing
nothing, for an unknown holder, bad input, or an issuance not yet settled."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.simplatform import Population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import adult, consent, identity, issue, issue_request, live_sample, rich
from tests.privacy.files import raw_bytes
from tests.simplatform.test_platform_server import unknown_id
from tests.sql import count, fetch


def _erase(person_id: str, **fields: object) -> opb.EraseHolderRequest:
    request = opb.EraseHolderRequest(
        bank_id="bank-a",
        social_security_number=person_id,
        ground=opb.ERASURE_GROUND_SERVICE_ENDED_BY_HOLDER,
        reference="ticket-2026-1201",
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


async def _a_failed_verify(gw: GatewayUnderTest, person_id: str, template: object) -> None:
    """A failure the ledger records against the holder (the platform away)."""
    scenario = ppb.FaultScenario(seed=1)
    scenario.rules.add(
        method="/essc.platform.v1.IdentityService/CheckRealName", outage=ppb.OutageFault()
    )
    await gw.control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.Verify(template, metadata=gw.a, timeout=10)
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())


def _complaint(person_id: str, clock: FakeClock) -> opb.GetLiabilityReportRequest:
    request = opb.GetLiabilityReportRequest(
        bank_id="bank-a", holder_social_security_number=person_id
    )
    request.since.FromDatetime(clock.now() - timedelta(days=1))
    request.until.FromDatetime(clock.now() + timedelta(days=1))
    return request


async def test_an_erased_holder_leaves_no_readable_copy_and_is_unknown_afterwards(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    issued = await issue(gw, person, gw.a, clock.now())
    assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED
    verify = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    await _a_failed_verify(gw, person.id_number, verify)
    complaint = _complaint(person.id_number, clock)
    before = await gw.operator.GetLiabilityReport(complaint, metadata=gw.ops)
    [record] = json.loads(before.body)["records"]
    [card] = await fetch(database, "SELECT * FROM cards")
    [key] = await fetch(database, "SELECT wrapped FROM holder_keys")
    secrets = [
        bytes(card[f"{field}_sealed"]) for field in ("name", "id_number", "phone", "card_number")
    ] + [card["holder_token"].encode(), bytes(key["wrapped"])]
    stored = await raw_bytes(database)
    assert all(secret in stored for secret in secrets)

    erased = await gw.operator.EraseHolder(_erase(person.id_number), metadata=gw.ops)
    assert (erased.cards_erased, erased.records_unlinked) == (1, 1)

    # No row names the holder, and no copy is left in the files (WAL included).
    for table in ("cards", "holder_keys", "holder_links", "factor_failures", "sms_sends"):
        assert await count(database, table) == 0, table
    left = await raw_bytes(database)
    assert [s for s in secrets if s in left] == []
    # The earlier record stays, verifies, and leads to nobody: a complaint by ID finds
    # nothing; the record is still there by its request id.
    after = await gw.operator.GetLiabilityReport(complaint, metadata=gw.ops)
    assert json.loads(after.body)["records"] == []
    kept = f"request_id = '{record['request_id']}'"
    assert await count(database, "liability_records", kept) == 1
    audit = await gw.operator.VerifyLedger(opb.VerifyLedgerRequest(), metadata=gw.ops)
    assert audit.intact, audit.problems
    [entry] = await fetch(database, "SELECT body FROM evidence_log WHERE kind = 'ERASURE'")
    body = bytes(entry["body"]).decode()
    assert erased.erasure_id in body
    assert "SERVICE_ENDED_BY_HOLDER" in body
    assert "ticket-2026-1201" in body
    assert person.id_number not in body
    assert card["holder_token"] not in body

    # The person is unknown now: erasing again is NOT_FOUND, and a new application
    # starts afresh with a new card under a new key.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await gw.operator.EraseHolder(_erase(person.id_number), metadata=gw.ops)
    assert rich(again.value).reason == "HOLDER_NOT_FOUND"
    reissued = await issue(gw, person, gw.a, clock.now())
    assert reissued.outcome in (pb.ISSUE_OUTCOME_ISSUED, pb.ISSUE_OUTCOME_ALREADY_HELD)
    [new_key] = await fetch(database, "SELECT wrapped FROM holder_keys")
    assert bytes(new_key["wrapped"]) != bytes(key["wrapped"])


async def test_an_issuance_in_doubt_keeps_the_holder_from_erasure_until_it_settles(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    verified = await gw.stub.Verify(
        pb.VerifyRequest(
            applicant=identity(person),
            physical_card_number=person.card_number,
            biometric_sample=live_sample(person),
        ),
        metadata=gw.a,
    )
    scenario = ppb.FaultScenario(seed=1)
    scenario.rules.add(
        method="/essc.platform.v1.CardService/IssueCard", answer_lost=ppb.AnswerLostFault()
    )
    scenario.rules.add(
        method="/essc.platform.v1.OperationService/GetOperation", outage=ppb.OutageFault()
    )
    await gw.control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))
    request = issue_request(person, verified.verification_token, consent(clock.now()))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gw.stub.Issue(request, metadata=gw.a)
    assert rich(failed.value).metadata["outcome"] == "IN_DOUBT"
    # The platform may have issued a card the gateway would forget: refused, nothing changed.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gw.operator.EraseHolder(_erase(person.id_number), metadata=gw.ops)
    assert rich(refused.value).code == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(refused.value).reason == "HOLDER_ISSUANCE_UNSETTLED"
    assert await count(database, "evidence_log", "kind = 'ERASURE'") == 0
    assert await count(database, "holder_links") == 1  # the in-doubt failure's record

    # Settled (the retry records the card the platform issued): the erasure goes through.
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    settled = await gw.stub.Issue(request, metadata=gw.a)
    assert settled.outcome == pb.ISSUE_OUTCOME_ISSUED
    erased = await gw.operator.EraseHolder(_erase(person.id_number), metadata=gw.ops)
    assert erased.cards_erased == 1
    assert await count(database, "cards") == 0


async def test_bad_or_unknown_erasures_change_nothing(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await gw.operator.EraseHolder(_erase(unknown_id(population)), metadata=gw.ops)
    assert (rich(unknown.value).code, rich(unknown.value).reason) == (
        grpc.StatusCode.NOT_FOUND, "HOLDER_NOT_FOUND"
    )  # fmt: skip
    bad_fields = {
        "ground": _erase(person.id_number, ground=0),
        "reference": _erase(person.id_number, reference=" "),
        "bank_id": _erase(person.id_number, bank_id="bank-z"),
        "social_security_number": _erase("123"),
    }
    for field, request in bad_fields.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gw.operator.EraseHolder(request, metadata=gw.ops)
        error = rich(refused.value)
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
        assert set(error.violations) == {field}
        assert person.id_number not in error.message
    assert await count(database, "cards") == 1
    assert await count(database, "evidence_log", "kind = 'ERASURE'") == 0
    # Each refusal is in the access log.
    log = await gw.operator.ListAccessLog(opb.ListAccessLogRequest(limit=100), metadata=gw.ops)
    refusals = [e for e in log.entries if e.method == "EraseHolder" and e.code != "ADMITTED"]
    assert [e.code for e in refusals] == ["NOT_FOUND"] + ["INVALID_ARGUMENT"] * 4
