"""Operator roles (A13(1)): each OperatorService method admits the roles the proto states,
and every other role is refused with ROLE_NOT_PERMITTED, changing nothing. Every call,
allowed or refused, is in the access log, which the ledger audit checks like any evidence."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from essc.gateway.v1 import operator_pb2 as opb
from essc.gateway.v1 import operator_pb2_grpc
from essc_gateway.access.gate import ADMITTED
from essc_gateway.access.roles import METHOD_ROLES, OperatorRole
from essc_gateway.config import OperatorConfig
from essc_gateway.crypto import token_digest
from essc_gateway.simplatform import SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest, make_config, running_gateway
from tests.evidence.attacks import edit_entry
from tests.gateway.flows import rich
from tests.polling import eventually
from tests.sql import writes_held

ROOT = Path(__file__).resolve().parents[2]
SERVICE = opb.DESCRIPTOR.services_by_name["OperatorService"]


def _token(role: OperatorRole) -> str:
    return f"token-of-the-{role.value.replace('_', '-')}-" + "r" * 16


def _as(role: OperatorRole) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {_token(role)}"),)


@pytest.fixture
async def gw(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> AsyncIterator[GatewayUnderTest]:
    """One operator per role, each holding that role alone."""
    operators = tuple(
        OperatorConfig(role.value, token_sha256=token_digest(_token(role)), roles=frozenset({role}))
        for role in OperatorRole
    )
    async with running_gateway(platform, clock, make_config(database, operators=operators)) as gw:
        yield gw


def test_the_proto_states_the_roles_each_method_admits() -> None:
    proto = (ROOT / "protos/essc/gateway/v1/operator.proto").read_text()
    stated = {
        method: frozenset(OperatorRole(r) for r in roles.split(", "))
        for roles, method in re.findall(r"// Roles: ([a-z_, ]+)\.\n  rpc (\w+)\(", proto)
    }
    assert set(stated) == {m.name for m in SERVICE.methods}
    assert stated == dict(METHOD_ROLES)


async def _call(
    gw: GatewayUnderTest, method: str, request: object, metadata: object
) -> grpc.aio.AioRpcError | None:
    stub = operator_pb2_grpc.OperatorServiceStub(gw.channel)
    try:
        await getattr(stub, method)(request, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        return error
    return None


async def test_every_role_is_refused_outside_its_methods_and_every_call_is_logged(
    gw: GatewayUnderTest, database: StoreLocation
) -> None:
    made: list[tuple[str, str, str]] = []  # (operator, method, answer code)
    for role in OperatorRole:
        for method in SERVICE.methods:
            request = getattr(opb, method.input_type.name)()
            error = await _call(gw, method.name, request, _as(role))
            if role in METHOD_ROLES[method.name]:
                assert error is None or rich(error).reason != "ROLE_NOT_PERMITTED", method.name
                made.append((role.value, method.name, ADMITTED))
            else:
                assert error is not None, (role, method.name)
                refusal = rich(error)
                assert (refusal.code, refusal.reason) == (
                    grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED"
                ), (role, method.name)  # fmt: skip
                assert refusal.metadata["method"] == method.name
            code = "OK" if error is None else error.code().name
            made.append((role.value, method.name, code))

    # A refused change changes nothing.
    window = opb.AnnounceMaintenanceRequest(
        kind=opb.MAINTENANCE_KIND_PLATFORM,
        starts_at=timestamp_pb2.Timestamp(seconds=2_000_000_000),
        ends_at=timestamp_pb2.Timestamp(seconds=2_000_003_600),
        reason="upgrade",
    )
    rotation = opb.RotateKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_DATA)
    keys_before = await gw.operator.GetKeyStatus(
        opb.GetKeyStatusRequest(), metadata=_as(OperatorRole.AUDITOR)
    )
    made += [("auditor", "GetKeyStatus", ADMITTED), ("auditor", "GetKeyStatus", "OK")]
    for role in (OperatorRole.AUDITOR, OperatorRole.PRIVACY_OFFICER, OperatorRole.KEY_CUSTODIAN):
        error = await _call(gw, "AnnounceMaintenance", window, _as(role))
        assert error is not None
        assert rich(error).reason == "ROLE_NOT_PERMITTED"
        made.append((role.value, "AnnounceMaintenance", "PERMISSION_DENIED"))
    for role in (OperatorRole.OPERATOR, OperatorRole.AUDITOR, OperatorRole.PRIVACY_OFFICER):
        error = await _call(gw, "RotateKey", rotation, _as(role))
        assert error is not None
        assert rich(error).reason == "ROLE_NOT_PERMITTED"
        made.append((role.value, "RotateKey", "PERMISSION_DENIED"))
    listed = await gw.operator.ListMaintenance(
        opb.ListMaintenanceRequest(), metadata=_as(OperatorRole.OPERATOR)
    )
    assert not listed.windows
    made += [("operator", "ListMaintenance", ADMITTED), ("operator", "ListMaintenance", "OK")]
    keys_after = await gw.operator.GetKeyStatus(
        opb.GetKeyStatusRequest(), metadata=_as(OperatorRole.AUDITOR)
    )
    assert keys_after.keys == keys_before.keys
    made += [("auditor", "GetKeyStatus", ADMITTED), ("auditor", "GetKeyStatus", "OK")]
    # A caller no operator credential names is logged too, as "-".
    error = await _call(gw, "ListCircuits", opb.ListCircuitsRequest(), gw.a)
    assert error is not None
    assert rich(error).reason == "NOT_AN_OPERATOR"
    made.append(("-", "ListCircuits", "PERMISSION_DENIED"))

    # The access log lists every call of this test, in order, each answer after its
    # admission; reading it is itself logged.
    logged: list[opb.AccessLogEntry] = []
    cursor = 0
    while True:
        page = await gw.operator.ListAccessLog(
            opb.ListAccessLogRequest(after=cursor, limit=50), metadata=_as(OperatorRole.AUDITOR)
        )
        logged += page.entries
        cursor = page.next_cursor
        if len(page.entries) < 50:  # each read logs itself: the log never stops growing
            break
    calls, own_reads = logged[: len(made)], logged[len(made) :]
    assert [(e.operator_id, e.method, e.code) for e in calls] == made
    assert {(e.operator_id, e.method) for e in own_reads} == {("auditor", "ListAccessLog")}
    answered = {e.access_id for e in calls if e.code != ADMITTED}
    assert {e.access_id for e in calls if e.code == ADMITTED} <= answered
    rotations = [e for e in calls if e.method == "RotateKey" and e.target]
    assert len(rotations) == 3
    assert all(e.target == f"bank_id=bank-a purpose={opb.KEY_PURPOSE_DATA}" for e in rotations)

    # An entry edited in the database is found by the audit.
    victim = next(e for e in calls if e.code == "PERMISSION_DENIED")
    await edit_entry(
        database, "OPERATOR_ACCESS", victim.access_id, lambda body: {**body, "code": "OK"}
    )
    audit = await gw.operator.VerifyLedger(
        opb.VerifyLedgerRequest(), metadata=_as(OperatorRole.AUDITOR)
    )
    assert not audit.intact
    assert any("leaf hash" in problem for problem in audit.problems), audit.problems


async def test_a_call_the_caller_gave_up_on_is_logged_as_cancelled(
    gw: GatewayUnderTest, database: StoreLocation
) -> None:
    async with writes_held(database, "erasure_jobs"):
        with pytest.raises(grpc.aio.AioRpcError) as gave_up:
            await gw.operator.EraseBank(
                opb.EraseBankRequest(bank_id="bank-a", reference="bank-a leaves"),
                metadata=_as(OperatorRole.PRIVACY_OFFICER),
                timeout=1,
            )
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    async def both_entries() -> list[opb.AccessLogEntry]:
        page = await gw.operator.ListAccessLog(
            opb.ListAccessLogRequest(limit=100), metadata=_as(OperatorRole.AUDITOR)
        )
        return [e for e in page.entries if e.method == "EraseBank"]

    async def answered() -> bool:
        return len(await both_entries()) == 2

    await eventually(answered)
    # The admission (written once the lock went, or before it) and the answer pair up.
    admitted, cancelled = await both_entries()
    assert (admitted.code, cancelled.code) == (ADMITTED, "CANCELLED")
    assert admitted.access_id == cancelled.access_id
