"""Maintenance windows (A16(1)(a)), the operator API and store-and-forward issuance."""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc, operator_pb2_grpc
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.app import Gateway
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    adult,
    identity,
    key,
    live_sample,
    rich,
    ts,
    verified_issue_request,
    verify,
)
from tests.polling import eventually
from tests.sql import count, fetch, writes_held


async def announce(
    gw: GatewayUnderTest,
    starts_at: datetime,
    ends_at: datetime,
    rpcs: tuple[str, ...] = (),
    kind: opb.MaintenanceKind.ValueType = opb.MAINTENANCE_KIND_BANK,
) -> opb.MaintenanceWindow:
    reply = await gw.operator.AnnounceMaintenance(
        opb.AnnounceMaintenanceRequest(
            kind=kind,
            starts_at=ts(starts_at),
            ends_at=ts(ends_at),
            rpcs=list(rpcs),
            reason="core banking upgrade",
            channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
            notice="https://bank.example/notices/maintenance",
        ),
        metadata=gw.ops,
    )
    return reply.window


async def platform_calls(gw: GatewayUnderTest) -> int:
    counts = await gw.control.GetCallCounts(ppb.GetCallCountsRequest())
    return sum(counts.counts.values())


async def test_a16_1_a_no_platform_call_during_an_announced_window(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    now = clock.now()
    # Announced publicly more than the minimum notice (1 hour) before it begins.
    window = await announce(gw, now + timedelta(minutes=61), now + timedelta(minutes=91))
    clock.advance(timedelta(minutes=62))
    before = await platform_calls(gw)
    for _ in range(20):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await verify(gw, adult(population, now.date()), gw.a)
        error = rich(raised.value)
        assert error.code == grpc.StatusCode.UNAVAILABLE
        assert error.reason == "MAINTENANCE_WINDOW"
        assert error.metadata["window_id"] == window.window_id
        assert error.metadata["announced_in_advance"] == "true"
        assert error.retry_seconds == pytest.approx(29 * 60, abs=1)
    assert await platform_calls(gw) == before


async def test_a_window_covers_only_its_rpcs_and_only_its_time(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    now = clock.now()
    person = adult(population, now.date())
    await announce(gw, now, now + timedelta(minutes=10), rpcs=("Query",))
    assert (await verify(gw, person, gw.a)).verified  # Verify is not covered
    clock.advance(timedelta(minutes=10))
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # Query is, until its end
        await gw.stub.Query(pb.QueryRequest(auth_token="at1.x"), metadata=gw.a)
    assert rich(raised.value).reason == "AUTH_TOKEN_INVALID"  # past the end: served


async def test_a_window_announced_after_its_start_says_so(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    now = clock.now()
    await announce(gw, now - timedelta(minutes=5), now + timedelta(minutes=5))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await verify(gw, adult(population, now.date()), gw.a)
    assert rich(raised.value).metadata["announced_in_advance"] == "false"


async def test_windows_are_amended_cancelled_listed_and_survive_a_restart(
    gw: GatewayUnderTest,
    platform: SimulatedPlatform,
    clock: FakeClock,
    population: Population,
) -> None:
    now = clock.now()
    window = await announce(gw, now + timedelta(hours=1), now + timedelta(hours=2))
    amended = await gw.operator.AmendMaintenance(
        opb.AmendMaintenanceRequest(
            window_id=window.window_id,
            ends_at=ts(now + timedelta(hours=3)),
            rpcs=["Issue"],
            replace_rpcs=True,
        ),
        metadata=gw.ops,
    )
    assert amended.window.version == 2
    assert list(amended.window.rpcs) == ["Issue"]
    assert amended.window.announced_at == window.announced_at
    await gw.gateway.stop(0)

    restarted = Gateway(gw.config, platform.address, clock)
    port = await restarted.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            operator = operator_pb2_grpc.OperatorServiceStub(channel)
            listed = await operator.ListMaintenance(
                opb.ListMaintenanceRequest(current_only=True), metadata=gw.ops
            )
            assert [w.window_id for w in listed.windows] == [window.window_id]
            assert listed.windows[0].ends_at == ts(now + timedelta(hours=3))
            cancelled = await operator.CancelMaintenance(
                opb.CancelMaintenanceRequest(window_id=window.window_id), metadata=gw.ops
            )
            assert cancelled.window.HasField("cancelled_at")
            clock.advance(timedelta(hours=1, minutes=30))
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            person = adult(population, now.date())
            verified = await stub.Verify(
                pb.VerifyRequest(
                    applicant=identity(person),
                    physical_card_number=person.card_number,
                    biometric_sample=live_sample(person),
                ),
                metadata=gw.a,
            )
            assert verified.verified
    finally:
        await restarted.stop(0)


async def test_only_operators_may_manage_windows(gw: GatewayUnderTest, clock: FakeClock) -> None:
    request = opb.ListMaintenanceRequest()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.ListMaintenance(request, metadata=gw.a)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.ListMaintenance(request)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_window_must_make_sense(gw: GatewayUnderTest, clock: FakeClock) -> None:
    now = clock.now()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.AnnounceMaintenance(
            opb.AnnounceMaintenanceRequest(
                kind=opb.MAINTENANCE_KIND_BANK,
                starts_at=ts(now),
                ends_at=ts(now),
                rpcs=["Nope"],
                reason="",
                channels=[opb.NOTICE_CHANNEL_WEBSITE, opb.NOTICE_CHANNEL_MOBILE_BANKING],
                notice="https://bank.example/notices/maintenance",
            ),
            metadata=gw.ops,
        )
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.violations) == {"ends_at", "rpcs", "reason"}


async def test_store_and_forward_completes_every_pending_issue_even_across_a_restart(
    gw: GatewayUnderTest, platform: SimulatedPlatform, population: Population, clock: FakeClock
) -> None:
    now = clock.now()
    people = [adult(population, now.date(), skip=i) for i in range(5)]
    requests = [await verified_issue_request(gw, p, gw.a, now) for p in people]
    window = await announce(gw, now, now + timedelta(minutes=30), rpcs=("Issue",))
    issue_calls = (await gw.control.GetCallCounts(ppb.GetCallCountsRequest())).counts
    pending = [await gw.stub.Issue(r, metadata=gw.a) for r in requests]
    assert {p.outcome for p in pending} == {pb.ISSUE_OUTCOME_PENDING}
    assert pending[0].forward_after == window.ends_at
    again = await gw.stub.Issue(requests[0], metadata=gw.a)  # same key: still pending
    assert again.outcome == pb.ISSUE_OUTCOME_PENDING
    status = await gw.stub.GetIssueStatus(
        pb.GetIssueStatusRequest(idempotency_key=requests[0].idempotency_key), metadata=gw.a
    )
    assert status.state == pb.ISSUE_STATE_PENDING
    assert (await gw.control.GetCallCounts(ppb.GetCallCountsRequest())).counts == issue_calls

    await gw.gateway.stop(0)  # a restart in the middle of the window
    restarted = Gateway(gw.config, platform.address, clock)
    port = await restarted.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            clock.advance(timedelta(minutes=31))

            async def all_completed() -> bool:
                states = [
                    await stub.GetIssueStatus(
                        pb.GetIssueStatusRequest(idempotency_key=r.idempotency_key),
                        metadata=gw.a,
                    )
                    for r in requests
                ]
                return all(s.state == pb.ISSUE_STATE_COMPLETED for s in states)

            await eventually(all_completed)
            cards = set()
            for request in requests:
                replay = await stub.Issue(request, metadata=gw.a)
                assert replay.outcome == pb.ISSUE_OUTCOME_REPLAYED
                assert replay.card.status == pb.CARD_STATUS_ACTIVE
                cards.add(replay.card.essc_id)
            assert len(cards) == len(people)
    finally:
        await restarted.stop(0)


async def test_a_bank_without_store_and_forward_is_told_to_come_back(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    now = clock.now()
    request = await verified_issue_request(gw, adult(population, now.date()), gw.b, now)
    await announce(gw, now, now + timedelta(minutes=30), rpcs=("Issue",))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Issue(request, metadata=gw.b)
    assert rich(raised.value).reason == "MAINTENANCE_WINDOW"


async def test_issue_status_of_an_unknown_key_is_not_found(gw: GatewayUnderTest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.GetIssueStatus(pb.GetIssueStatusRequest(idempotency_key=key()), metadata=gw.a)
    assert rich(raised.value).reason == "ISSUE_NOT_FOUND"


async def test_a_refusal_in_a_platform_window_does_not_wait_for_its_record(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """The stored window proves the clause of every request it refused (A16(1)(b) for the
    platform's own window), so the refusal is answered before its record commits: it is
    answered even while the store cannot write, and its record follows."""
    now = clock.now()
    await announce(gw, now, now + timedelta(minutes=10), kind=opb.MAINTENANCE_KIND_PLATFORM)
    person = adult(population, now.date())
    with pytest.raises(grpc.aio.AioRpcError):  # the first: the bank's rate tokens taken
        await verify(gw, person, gw.a)
    async with writes_held(database, "evidence_log"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await gw.stub.Verify(
                pb.VerifyRequest(
                    applicant=identity(person),
                    physical_card_number=person.card_number,
                    biometric_sample=live_sample(person),
                ),
                metadata=gw.a,
                timeout=2,
            )
        error = rich(raised.value)
        assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "MAINTENANCE_WINDOW")
        assert error.metadata["ledger_request_id"]

    request_id = error.metadata["ledger_request_id"]

    async def recorded() -> bool:
        return await count(database, "liability_records", f"request_id = '{request_id}'") == 1

    await eventually(recorded)
    [entry] = await fetch(
        database,
        "SELECT body FROM evidence_log WHERE kind = 'LIABILITY_RECORD' AND ref = ?",
        request_id,
    )
    assert '"clause":"A16(1)(b)"' in bytes(entry["body"]).decode().replace(" ", "")
