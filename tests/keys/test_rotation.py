"""Rotation at every level while the gateway serves, on SQLite and PostgreSQL: no call fails;
what was sealed before still opens (cards, tokens handed out, holders found by ID); a DATA
rotation's job moves every holder key to the new version, after which the old version can be
retired and not before; a key incident refuses the compromised tokens at once and
re-encrypts every holder's data under fresh holder keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest, make_config, running_gateway
from tests.gateway.flows import adult, auth_token, change_to_strong_password, issue, rich, verify


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while not await check():
        assert loop.time() < until, "not within the time allowed"
        await asyncio.sleep(0.05)


async def _holder_with_token(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, skip: int
) -> tuple[str, pb.IssueResponse]:
    person = adult(population, clock.now().date(), skip=skip)
    issued = await issue(gw, person, gw.a, clock.now())
    await change_to_strong_password(gw, person, gw.a)
    return await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS), issued


async def _holder_key_ids(
    gw: GatewayUnderTest, issued: list[pb.IssueResponse], data_version: int = 1
) -> set[str]:
    store = gw.gateway._store
    assert store is not None
    found = set()
    for response in issued:
        card = await store.get_card(response.card.essc_id)
        assert card is not None
        key = await store.holder_key("bank-a", card.holder_token)
        assert key is not None
        assert key.data_version == data_version
        found.add(key.key_id)
    return found


async def _jobs_done(gw: GatewayUnderTest) -> bool:
    status = await gw.operator.GetKeyStatus(opb.GetKeyStatusRequest(), metadata=gw.ops)
    return all(job.HasField("finished_at") for job in status.jobs)


@pytest.mark.timeout(120)
async def test_rotation_at_every_level_under_load_fails_no_call(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    tokens = [await _holder_with_token(gw, population, clock, skip) for skip in range(3)]
    failures: list[str] = []
    calls = 0
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        nonlocal calls
        person = adult(population, clock.now().date(), skip=10 + worker)
        while not stop.is_set():
            try:
                for token, _ in tokens:
                    await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
                assert (await verify(gw, person, gw.a)).verified
                calls += len(tokens) + 1
            except grpc.aio.AioRpcError as error:
                failures.append(f"{error.code().name} {rich(error).reason}")

    workers = [asyncio.create_task(load(w)) for w in range(3)]
    try:
        for purpose in (
            opb.KEY_PURPOSE_DATA,
            opb.KEY_PURPOSE_TOKENS,
            opb.KEY_PURPOSE_LOOKUP,
            opb.KEY_PURPOSE_BANK,
        ):
            await asyncio.sleep(0.2)
            rotated = await gw.operator.RotateKey(
                opb.RotateKeyRequest(bank_id="bank-a", purpose=purpose), metadata=gw.ops
            )
            assert rotated.key.version == 2
            assert rotated.key.created_by == "ops"
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert failures == []
    assert calls > 0
    await _eventually(lambda: _jobs_done(gw))
    # Holders issued before the rotations: still found by ID, their cards still open.
    for skip in range(3):
        person = adult(population, clock.now().date(), skip=skip)
        assert await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
    # The old DATA version: nothing is under it now; the old BANK version is retired.
    status = await gw.operator.GetKeyStatus(opb.GetKeyStatusRequest(), metadata=gw.ops)
    states = {k.key_id: k.state for k in status.keys if k.bank_id == "bank-a"}
    assert states["bank-a/BANK/v1"] == opb.KEY_STATE_RETIRED
    assert states["bank-a/BANK/v2"] == opb.KEY_STATE_ACTIVE
    jobs = {j.job_id: (j.done, j.total) for j in status.jobs if j.bank_id == "bank-a"}
    assert jobs == {"bank-a/DATA/v2": (3, 3), "bank-a/LOOKUP/v2": (3, 3)}
    # Every card is filed under the new lookup version now; the old one still finds nothing
    # but the ledger's records (kept as they were signed).
    store = gw.gateway._store
    assert store is not None
    assert await store.count_holder_tokens_to_move("bank-a", 2) == 0
    await gw.operator.RetireKey(
        opb.RetireKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_DATA, version=1),
        metadata=gw.ops,
    )


async def test_a_version_in_use_is_not_retired(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    await issue(gw, adult(population, clock.now().date()), gw.a, clock.now())
    retire = opb.RetireKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_DATA, version=1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # the version that seals now
        await gw.operator.RetireKey(retire, metadata=gw.ops)
    assert (raised.value.code(), rich(raised.value).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "KEY_IN_USE",
    )
    # Rotated, but the holder key still under v1 until the job has moved it.
    gw.gateway.key_management.mover._pause = 3600.0
    await gw.operator.RotateKey(
        opb.RotateKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_DATA), metadata=gw.ops
    )
    tokens = await gw.operator.RotateKey(
        opb.RotateKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_TOKENS), metadata=gw.ops
    )
    assert tokens.key.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # tokens it sealed may be in use
        await gw.operator.RetireKey(
            opb.RetireKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_TOKENS, version=1),
            metadata=gw.ops,
        )
    assert rich(raised.value).reason == "KEY_IN_USE"


async def test_a_key_incident_refuses_tokens_and_reencrypts_every_holder(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    store = gw.gateway._store
    assert store is not None
    holders = [await _holder_with_token(gw, population, clock, skip) for skip in range(3)]
    before = await _holder_key_ids(gw, [issued for _, issued in holders])
    report = await gw.operator.DeclareKeyCompromised(
        opb.DeclareKeyCompromisedRequest(
            bank_id="bank-a", purpose=opb.KEY_PURPOSE_BANK, version=1, reason="HSM backup lost"
        ),
        metadata=gw.ops,
    )
    assert {k.key_id for k in report.compromised} == {
        "bank-a/BANK/v1", "bank-a/DATA/v1", "bank-a/LOOKUP/v1", "bank-a/TOKENS/v1",
    }  # fmt: skip
    assert {k.key_id for k in report.replacements} == {
        "bank-a/BANK/v2", "bank-a/DATA/v2", "bank-a/LOOKUP/v2", "bank-a/TOKENS/v2",
    }  # fmt: skip
    assert report.reencryption.rekey
    assert report.reencryption.total == 3
    # Tokens sealed under the compromised TOKENS key are refused from now on.
    for token, _ in holders:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
        assert rich(raised.value).reason == "AUTH_TOKEN_INVALID"
    await _eventually(lambda: _jobs_done(gw))
    after = await _holder_key_ids(gw, [issued for _, issued in holders], data_version=2)
    assert len(after) == 3
    assert not after & before  # every holder key replaced
    # The holders authenticate again, and their data opens under the fresh keys.
    for skip in range(3):
        person = adult(population, clock.now().date(), skip=skip)
        token = await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
        await gw.stub.Query(pb.QueryRequest(auth_token=token), metadata=gw.a)
    status = await gw.operator.GetKeyStatus(opb.GetKeyStatusRequest(), metadata=gw.ops)
    [job] = [j for j in status.jobs if j.rekey]
    assert (job.done, job.total) == (3, 3)


async def test_a_lookup_move_merges_a_returning_holders_cards_under_one_key(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """Terminated before the rotation, issued again after it (under the new token, with a
    key of its own) and moved only then: the old card joins the new key, one key remains."""
    config = make_config(database)
    # Key jobs are worked by hand here: the move must come after the second card.
    async with running_gateway(platform, clock, config, background_jobs=False) as gw:
        store = gw.gateway._store
        assert store is not None
        person = adult(population, clock.now().date(), skip=20)
        first = await issue(gw, person, gw.a, clock.now(), idempotency_key="first-card")
        await change_to_strong_password(gw, person, gw.a)
        unbind = await auth_token(
            gw, person, gw.a, pb.BUSINESS_SCENARIO_UNBIND, sms=True, biometric=True
        )
        await gw.stub.Terminate(
            pb.TerminateRequest(auth_token=unbind, idempotency_key="end-first"), metadata=gw.a
        )
        await gw.operator.RotateKey(
            opb.RotateKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_LOOKUP),
            metadata=gw.ops,
        )
        second = await issue(gw, person, gw.a, clock.now(), idempotency_key="second-card")
        assert second.card.essc_id != first.card.essc_id
        await gw.gateway.key_management.mover.work_once()
        assert await _jobs_done(gw)
        old_card = await store.get_card(first.card.essc_id)
        new_card = await store.get_card(second.card.essc_id)
        assert old_card is not None
        assert new_card is not None
        assert old_card.holder_token == new_card.holder_token
        assert old_card.holder_token.startswith("2.")
        # Both cards open (replays read them back through the one key left).
        for key_name, issued in (("first-card", first), ("second-card", second)):
            again = await issue(gw, person, gw.a, clock.now(), idempotency_key=key_name)
            masked = again.card.physical_card_number_masked
            assert masked == issued.card.physical_card_number_masked
