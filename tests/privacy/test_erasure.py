"""A14 erasure: crypto-shredding plus deletion of every row naming the holder, no readable
copy left in the database's files, the erasure in the evidence log, earlier records still
verifiable but leading to nobody, and the person unknown afterwards. Refused, changing
nothing, for an unknown holder, bad input, or an issuance not yet settled."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.errors import ErrorReason, PreconditionFailed
from essc_gateway.liability.model import HolderLink
from essc_gateway.privacy.erasure import HolderErasure
from essc_gateway.privacy.model import ErasureGround
from essc_gateway.simplatform import Person, Population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    adult,
    consent,
    identity,
    issue,
    issue_answers_lost,
    issue_request,
    live_sample,
    rich,
    verify,
)
from tests.privacy.files import raw_bytes
from tests.simplatform.test_platform_server import unknown_id
from tests.sql import count, execute, fetch


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


async def _an_issuance_in_doubt(
    gw: GatewayUnderTest, person: Person, clock: FakeClock
) -> pb.IssueRequest:
    """`person`'s Issue whose answer was lost, the platform unable to say what happened."""
    verified = await verify(gw, person, gw.a)
    await issue_answers_lost(gw)
    request = issue_request(person, verified.verification_token, consent(clock.now()))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gw.stub.Issue(request, metadata=gw.a)
    assert rich(failed.value).metadata["outcome"] == "IN_DOUBT"
    return request


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
    assert erased.records_under_lookup_token == 0  # written with a holder reference

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
    request = await _an_issuance_in_doubt(gw, person, clock)
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


async def test_records_from_before_holder_references_and_live_cards_are_reported(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """A record written before schema 14 names the lookup token in its hashed evidence (its
    link has no salt): the erasure counts it and names the LOOKUP versions to destroy."""
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    await _a_failed_verify(
        gw,
        person.id_number,
        pb.VerifyRequest(
            applicant=identity(person),
            physical_card_number=person.card_number,
            biometric_sample=live_sample(person),
        ),
    )
    # As migration 14 left them: the record names the token itself, its link has no salt.
    await execute(database, "UPDATE holder_links SET salt = NULL")
    await execute(
        database,
        "UPDATE liability_records SET holder_token = (SELECT l.holder_token FROM holder_links l "
        "WHERE l.request_id = liability_records.request_id)",
    )
    erased = await gw.operator.EraseHolder(_erase(person.id_number), metadata=gw.ops)
    assert (erased.records_unlinked, erased.records_under_lookup_token) == (1, 1)
    assert list(erased.lookup_versions_to_destroy) == [1]
    assert erased.live_cards_erased == 1  # issued, not terminated: the bank ends it
    [entry] = await fetch(database, "SELECT body FROM evidence_log WHERE kind = 'ERASURE'")
    body = json.loads(bytes(entry["body"]))
    assert (body["records_under_lookup_token"], body["lookup_versions"]) == (1, [1])
    assert body["live_cards"] == 1


class _LateClaimStore:
    """The store as an erasure's first look sees it just before an issuance is claimed:
    no unsettled draft (every other call goes to the real store)."""

    def __init__(self, store: object) -> None:
        self._store = store

    async def unsettled_drafts(self, bank_id: str) -> list[tuple[str, bytes]]:
        return []

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_an_issuance_claimed_after_the_first_look_still_stops_the_erasure(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """The unsettled check that counts is the one inside the erasure's transaction."""
    person = adult(population, clock.now().date())
    await _an_issuance_in_doubt(gw, person, clock)
    store = gw.gateway._store
    assert store is not None
    erasure = HolderErasure(_LateClaimStore(store), gw.gateway.key_management.vault, clock)  # type: ignore[arg-type]
    with pytest.raises(PreconditionFailed) as refused:
        await erasure.erase(
            "bank-a", person.id_number, ErasureGround.NO_CONSENT, "ticket-9", "privacy-1"
        )
    assert refused.value.reason is ErrorReason.HOLDER_ISSUANCE_UNSETTLED
    assert await count(database, "evidence_log", "kind = 'ERASURE'") == 0
    assert await count(database, "holder_links") == 1


async def test_a_record_appended_after_the_erasure_it_predates_leads_to_nobody(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """A record held through an outage (or appended late) that arrived before its holder's
    erasure gets no link; one that arrived after it does."""
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    template = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    await _a_failed_verify(gw, person.id_number, template)
    store = gw.gateway._store
    assert store is not None
    [record] = await store.liability_records(
        clock.now() - timedelta(days=1), clock.now() + timedelta(days=1)
    )
    [link] = await fetch(database, "SELECT holder_token, salt FROM holder_links")
    holder = HolderLink(link["holder_token"], bytes(link["salt"]))
    held = replace(record, request_id="held-1", arrived_at=clock.now(), holder_link=holder)

    clock.advance(timedelta(seconds=5))
    await gw.operator.EraseHolder(_erase(person.id_number), metadata=gw.ops)
    assert await store.append_liability_if_absent(held)
    assert await count(database, "liability_records", "request_id = 'held-1'") == 1
    assert await count(database, "holder_links") == 0

    clock.advance(timedelta(seconds=5))
    later = replace(held, request_id="later-1", arrived_at=clock.now(), at=clock.now())
    assert await store.append_liability_if_absent(later)
    assert await count(database, "holder_links", "request_id = 'later-1'") == 1
    audit = await gw.operator.VerifyLedger(opb.VerifyLedgerRequest(), metadata=gw.ops)
    assert audit.intact, audit.problems


async def test_free_text_shaped_like_personal_data_is_refused(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """A reference or recipient goes into evidence no erasure reaches: no ID, phone or card
    number in it."""
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    for reference in (f"case of {person.id_number}", "call 138 0013 8000", "6222021234567890"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gw.operator.EraseHolder(
                _erase(person.id_number, reference=reference), metadata=gw.ops
            )
        error = rich(refused.value)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert set(error.violations) == {"reference"}
        assert person.id_number not in error.message
    with pytest.raises(grpc.aio.AioRpcError) as disclosed:
        await gw.operator.DiscloseHolder(
            opb.DiscloseHolderRequest(
                bank_id="bank-a",
                social_security_number=person.id_number,
                recipient="Mr Li, 13800138000",
                ground=opb.DISCLOSURE_GROUND_COMPETENT_AUTHORITY,
                reference="(2026) Jing 0105 Min Chu 12345",
            ),
            metadata=gw.ops,
        )
    assert set(rich(disclosed.value).violations) == {"recipient"}
    assert await count(database, "cards") == 1
    # A court order's number or a dated ticket passes.
    erased = await gw.operator.EraseHolder(
        _erase(person.id_number, reference="(2026) Jing 0105 Min Chu 12345, 2026-12-05"),
        metadata=gw.ops,
    )
    assert erased.cards_erased == 1


@asynccontextmanager
async def _append_under_way(
    database: StoreLocation, request_id: str, token: str
) -> AsyncIterator[None]:
    """Another replica's ledger append, not yet committed: it holds the evidence log's head
    (PostgreSQL; SQLite: the write lock) and has inserted its record's holder link."""
    insert = (
        "INSERT INTO holder_links (request_id, bank_id, holder_token, salt) VALUES (?, ?, ?, ?)"
    )
    if isinstance(database, Path):
        db = sqlite3.connect(database, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute(insert, (request_id, "bank-a", token, b"s" * 16))
        try:
            yield
        finally:
            db.execute("COMMIT")
            db.close()
        return
    connection = await asyncpg.connect(database.dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT 1 FROM evidence_head WHERE id = 1 FOR UPDATE")
            await connection.execute(
                insert.replace("?, ?, ?, ?", "$1, $2, $3, $4"),
                request_id,
                "bank-a",
                token,
                b"s" * 16,
            )
            yield
    finally:
        await connection.close()


async def test_a_link_being_appended_during_the_erasure_is_erased_with_it(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    [card] = await fetch(database, "SELECT holder_token FROM cards")
    store = gw.gateway._store
    assert store is not None
    # Called directly: through the RPC the access log's own append would wait first.
    erasure = HolderErasure(store, gw.gateway.key_management.vault, clock)
    async with _append_under_way(database, "in-flight-1", card["holder_token"]):
        erasing = asyncio.ensure_future(
            erasure.erase("bank-a", person.id_number, ErasureGround.NO_CONSENT, "t-1", "p-1")
        )
        await asyncio.sleep(0.5)  # the erasure reaches the lock and waits
        assert not erasing.done()
    erased = await erasing
    assert erased.counts.records_unlinked == 1  # the in-flight link, seen once committed
    assert await count(database, "holder_links") == 0
