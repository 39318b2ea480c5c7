"""Issuances whose outcome is unknown are never forgotten, and settle by themselves
(issue 10, defects 3 and 4)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.service.reconciler import SETTLE_GRACE
from essc_gateway.simplatform import Person, Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from essc_gateway.upstream.retrying import RetrySettings
from tests.conftest import BANK_A_TOKEN, GatewayUnderTest, make_config
from tests.gateway.flows import (
    Rich,
    adult,
    child_under_14,
    consent,
    guardian_of,
    identity,
    issue_request,
    live_sample,
    rich,
    ts,
    verified_issue_request,
)
from tests.gateway.test_maintenance import announce
from tests.polling import eventually
from tests.sql import allow_inserts, count, execute, fetch, refuse_inserts

ISSUE_CARD = "/essc.platform.v1.CardService/IssueCard"
A = (("authorization", f"Bearer {BANK_A_TOKEN}"),)
GET_OPERATION = "/essc.platform.v1.OperationService/GetOperation"


async def _faults(gw: GatewayUnderTest, *rules: tuple[str, str]) -> None:
    scenario = ppb.FaultScenario(seed=1)
    for method, kind in rules:
        rule = scenario.rules.add(method=method)
        if kind == "answer_lost":
            rule.answer_lost.CopyFrom(ppb.AnswerLostFault())
        else:
            rule.outage.CopyFrom(ppb.OutageFault())
    await gw.control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))


async def _state(gw: GatewayUnderTest, request: pb.IssueRequest) -> pb.IssueState.ValueType:
    status = await gw.stub.GetIssueStatus(
        pb.GetIssueStatusRequest(idempotency_key=request.idempotency_key), metadata=gw.a
    )
    return status.state


async def _not_found(gw: GatewayUnderTest, request: pb.IssueRequest) -> bool:
    try:
        await _state(gw, request)
    except grpc.aio.AioRpcError as error:
        return rich(error).reason == "ISSUE_NOT_FOUND"
    return False


async def _request_for(
    gw: GatewayUnderTest, person: Person, clock: FakeClock, guardian: pb.Guardian | None = None
) -> pb.IssueRequest:
    return await verified_issue_request(gw, person, gw.a, clock.now(), guardian=guardian)


async def _consents(database: StoreLocation) -> int:
    return await count(database, "cards", "consent_version <> ''")


async def _calls_to(gw: GatewayUnderTest, method: str) -> int:
    counts = (await gw.control.GetCallCounts(ppb.GetCallCountsRequest())).counts
    return sum(n for name, n in counts.items() if name.endswith(f"/{method}"))


async def _cancel_once_called(gw: GatewayUnderTest, request: pb.IssueRequest, method: str) -> None:
    """Sends the Issue and cancels it, as a client giving up, once the platform has received
    a call of `method` for it (the platform holds that call: see the latency set)."""
    before = await _calls_to(gw, method)
    call = gw.stub.Issue(request, metadata=gw.a)

    async def received() -> bool:
        return await _calls_to(gw, method) > before

    await eventually(received)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_call_that_died_before_the_platform_call_frees_its_key_at_once(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    today = clock.now().date()
    child, parent = child_under_14(population, today), adult(population, today)
    request = await _request_for(gw, child, clock, guardian_of(parent))
    # The guardian's check comes before IssueCard: the caller gives up during it.
    await gw.control.SetLatency(
        ppb.SetLatencyRequest(
            method="/essc.platform.v1.IdentityService/CheckRealName", base={"seconds": 2}
        )
    )
    await _cancel_once_called(gw, request, "CheckRealName")

    async def released() -> bool:
        return await _not_found(gw, request)

    await eventually(released)
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    issued = await gw.stub.Issue(request, metadata=gw.a)  # no REQUEST_IN_PROGRESS, no wait
    assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED
    assert await _calls_to(gw, "IssueCard") == 1


async def test_a_cancelled_call_whose_answer_was_lost_stays_in_doubt_and_a_retry_settles_it(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    request = await _request_for(gw, person, clock)
    await _faults(gw, (ISSUE_CARD, "answer_lost"), (GET_OPERATION, "outage"))
    await _cancel_once_called(gw, request, "IssueCard")

    async def in_doubt() -> bool:
        return await _state(gw, request) == pb.ISSUE_STATE_IN_DOUBT

    await eventually(in_doubt)  # never deleted: the platform issued the card
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    settled = await gw.stub.Issue(request, metadata=gw.a)
    assert settled.outcome == pb.ISSUE_OUTCOME_ISSUED
    assert await _state(gw, request) == pb.ISSUE_STATE_COMPLETED
    assert await _consents(database) == 1  # A1: the consent evidence is kept with the card


async def test_a_retry_refused_before_the_platform_keeps_an_in_doubt_key(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    request = await _request_for(gw, person, clock)
    await _faults(gw, (ISSUE_CARD, "answer_lost"), (GET_OPERATION, "outage"))
    first = await _issue_error(gw, request)
    assert first.metadata["outcome"] == "IN_DOUBT"
    await gw.operator.ForceCircuitOpen(
        opb.ForceCircuitOpenRequest(
            operation="IssueCard", until=ts(clock.now() + timedelta(minutes=5))
        ),
        metadata=gw.ops,
    )
    retry = await _issue_error(gw, request)  # lookup down, IssueCard circuit open: NOT_SENT
    assert retry.code == grpc.StatusCode.UNAVAILABLE
    assert await _state(gw, request) == pb.ISSUE_STATE_IN_DOUBT


async def test_an_issue_in_progress_is_told_apart_and_its_retry_gets_retry_info(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    # A gateway whose platform calls may take 5 s; IssueCard is held 2 s at the platform:
    # ample time to look while the first request holds the key.
    config = make_config(
        tmp_path / "slow.db", retry=RetrySettings(attempt_timeout=5.0, deadline_margin=0.1)
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            person = adult(population, clock.now().date())
            verified = await stub.Verify(
                pb.VerifyRequest(
                    applicant=identity(person),
                    physical_card_number=person.card_number,
                    biometric_sample=live_sample(person),
                ),
                metadata=A,
            )
            request = issue_request(person, verified.verification_token, consent(clock.now()))
            async with grpc.aio.insecure_channel(platform.control_address) as control_channel:
                control = platform_pb2_grpc.ControlServiceStub(control_channel)
                await control.SetLatency(
                    ppb.SetLatencyRequest(method=ISSUE_CARD, base={"seconds": 2})
                )
            first = asyncio.ensure_future(stub.Issue(request, metadata=A))

            async def in_progress() -> bool:
                try:
                    status = await stub.GetIssueStatus(
                        pb.GetIssueStatusRequest(idempotency_key=request.idempotency_key),
                        metadata=A,
                    )
                except grpc.aio.AioRpcError:
                    return False  # not claimed yet
                return status.state == pb.ISSUE_STATE_IN_PROGRESS

            await eventually(in_progress)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Issue(request, metadata=A)
            retry = rich(raised.value)
            assert retry.code == grpc.StatusCode.ABORTED
            assert retry.reason == "REQUEST_IN_PROGRESS"
            assert retry.retry_seconds is not None
            assert 0 < retry.retry_seconds <= 1  # most Issues end in milliseconds
            assert (await first).outcome == pb.ISSUE_OUTCOME_ISSUED
    finally:
        await gateway.stop(0)


async def test_the_reconciler_settles_every_in_doubt_key_once_the_lookup_is_back(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    people = [adult(population, clock.now().date(), skip=i) for i in range(3)]
    requests = [await _request_for(gw, p, clock) for p in people]
    # Every answer lost and the lookup down: the bank is told IN_DOUBT each time.
    await _faults(gw, (ISSUE_CARD, "answer_lost"), (GET_OPERATION, "outage"))
    for request in requests:
        assert (await _issue_error(gw, request)).metadata["outcome"] == "IN_DOUBT"
    assert await gw.gateway.reconciler.reconcile_once() == 0  # lookup still down
    assert [await _state(gw, r) for r in requests] == [pb.ISSUE_STATE_IN_DOUBT] * 3

    # The lookup is back; IssueCard's circuit is open: it is another platform service.
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    await gw.operator.ForceCircuitOpen(
        opb.ForceCircuitOpenRequest(
            operation="IssueCard", until=ts(clock.now() + timedelta(minutes=5))
        ),
        metadata=gw.ops,
    )
    assert await gw.gateway.reconciler.reconcile_once() == 3
    assert [await _state(gw, r) for r in requests] == [pb.ISSUE_STATE_COMPLETED] * 3
    assert await _consents(database) == 3
    # Nothing left to do, and no personal data kept twice.
    assert await gw.gateway.reconciler.reconcile_once() == 0
    assert await count(database, "issue_attempts", "draft_sealed IS NOT NULL") == 0


async def test_a_card_write_that_fails_after_the_platform_call_keeps_the_key_in_doubt(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    request = await _request_for(gw, person, clock)
    await refuse_inserts(database, "cards")  # the card row cannot be written
    error = await _issue_error(gw, request)
    assert error.code == grpc.StatusCode.INTERNAL  # the gateway's own fault, not the bank's
    assert await _state(gw, request) == pb.ISSUE_STATE_IN_DOUBT  # the platform issued it
    await allow_inserts(database, "cards")
    assert await gw.gateway.reconciler.reconcile_once() == 1
    assert await _state(gw, request) == pb.ISSUE_STATE_COMPLETED
    assert await _consents(database) == 1


async def _issue_error(gw: GatewayUnderTest, request: pb.IssueRequest) -> Rich:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Issue(request, metadata=gw.a)
    return rich(raised.value)


async def test_an_issue_whose_completion_a_crash_took_back_is_settled_with_the_card_given(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    # An Issue's one durable commit is its claim; its ISSUED completion is committed lazily
    # (Store.complete_issue), so a crash of the machine or of the database server can take
    # it back after the bank was answered. What remains is the claim with its sealed request,
    # as a request that died after IssueCard leaves it: after its lease the reconciler
    # settles it from the platform, with the card the bank was given, and issues nothing.
    person = adult(population, clock.now().date())
    request = await _request_for(gw, person, clock)
    store: Any = gw.gateway._store
    complete = store.complete_issue
    claimed: list[dict[str, Any]] = []
    keys_before: set[str] = set()

    async def completing(*args: Any, **options: Any) -> None:
        # The store as the crash leaves it: the claim written, the completion not yet.
        claimed[:] = await fetch(
            database,
            "SELECT * FROM issue_attempts WHERE idempotency_key = ?",
            request.idempotency_key,
        )
        keys_before.update(
            r["key_id"] for r in await fetch(database, "SELECT key_id FROM holder_keys")
        )
        await complete(*args, **options)

    store.complete_issue = completing
    try:
        issued = await gw.stub.Issue(request, metadata=gw.a)
    finally:
        store.complete_issue = complete
    assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED
    [claim] = claimed
    assert claim["state"] == "PENDING"

    # The crash: the completion's commit is gone, the claim's is not.
    await execute(
        database,
        "UPDATE issue_attempts SET state = ?, outcome = NULL, essc_id = NULL, "
        "completed_at = NULL, draft_sealed = ?, claim = ? WHERE bank_id = ? "
        "AND idempotency_key = ?",
        claim["state"],
        claim["draft_sealed"],
        claim["claim"],
        claim["bank_id"],
        claim["idempotency_key"],
    )
    await execute(database, "DELETE FROM cards WHERE essc_id = ?", issued.card.essc_id)
    for row in await fetch(database, "SELECT key_id FROM holder_keys"):
        if row["key_id"] not in keys_before:  # stored with the card, taken back with it
            await execute(database, "DELETE FROM holder_keys WHERE key_id = ?", row["key_id"])
    assert await _state(gw, request) == pb.ISSUE_STATE_IN_PROGRESS  # its lease still runs

    clock.advance(gw.config.settings.issue_lease + SETTLE_GRACE + timedelta(seconds=1))
    assert await gw.gateway.reconciler.reconcile_once() == 1
    status = await gw.stub.GetIssueStatus(
        pb.GetIssueStatusRequest(idempotency_key=request.idempotency_key), metadata=gw.a
    )
    assert status.state == pb.ISSUE_STATE_COMPLETED
    assert status.card.essc_id == issued.card.essc_id
    assert await _calls_to(gw, "IssueCard") == 1  # settled by lookup: nothing issued again
    assert await count(database, "issue_attempts", "draft_sealed IS NOT NULL") == 0


async def test_only_a_completion_the_platform_lookup_finds_again_is_committed_lazily(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    # The lookup finds an IssueCard that issued (or replayed) a card for its key; it finds
    # nothing for an ALREADY_HELD answer, so that completion, if a crash took it back, would
    # leave a key the reconciler forgets: the bank told ALREADY_HELD, the gateway NOT_FOUND.
    store: Any = gw.gateway._store
    complete = store.complete_issue
    lazy: list[tuple[str, bool]] = []

    async def noting(*args: Any, **options: Any) -> None:
        lazy.append((args[2], options.get("lazy", False)))  # (outcome, lazy)
        await complete(*args, **options)

    store.complete_issue = noting
    person = adult(population, clock.now().date())
    first = await gw.stub.Issue(await _request_for(gw, person, clock), metadata=gw.a)
    assert first.outcome == pb.ISSUE_OUTCOME_ISSUED
    # Again under another key: the gateway's records answer ALREADY_HELD.
    again = await gw.stub.Issue(await _request_for(gw, person, clock), metadata=gw.a)
    assert again.outcome == pb.ISSUE_OUTCOME_ALREADY_HELD
    # Our records of the card lost: the platform answers ALREADY_HELD with the card.
    await execute(database, "DELETE FROM issue_attempts WHERE essc_id = ?", first.card.essc_id)
    await execute(database, "DELETE FROM cards WHERE essc_id = ?", first.card.essc_id)
    third = await gw.stub.Issue(await _request_for(gw, person, clock), metadata=gw.a)
    assert third.outcome == pb.ISSUE_OUTCOME_ALREADY_HELD
    assert third.card.essc_id == first.card.essc_id
    # Accepted in a window and forwarded after it: durable, so that its status, once
    # COMPLETED, never goes back to PENDING.
    forwarded = await _request_for(gw, adult(population, clock.now().date(), skip=1), clock)
    await announce(gw, clock.now(), clock.now() + timedelta(minutes=30), rpcs=("Issue",))
    pending = await gw.stub.Issue(forwarded, metadata=gw.a)
    assert pending.outcome == pb.ISSUE_OUTCOME_PENDING
    clock.advance(timedelta(minutes=31))

    async def forwarded_done() -> bool:
        return await _state(gw, forwarded) == pb.ISSUE_STATE_COMPLETED

    await eventually(forwarded_done)
    assert lazy == [
        ("ISSUED", True),
        ("ALREADY_HELD", False),
        ("ALREADY_HELD", False),
        ("ISSUED", False),
    ]
