"""Dual control (K5), through a real gateway on SQLite and PostgreSQL: an export or a
destruction happens only when a second, different operator approves what the first asked;
an export leaves only sealed to the recipient's RSA key (and opens what the key sealed); a
destruction deletes the version's material; each step is a key event naming both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.access.roles import OperatorRole
from essc_gateway.config import OperatorConfig
from essc_gateway.crypto import token_digest
from essc_gateway.evidence.entries import EntryKind
from essc_gateway.keys.keyring import BankKeyring, KeySet, SealingKey
from essc_gateway.keys.suites import Suite, aead
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import OPERATOR_TOKEN, GatewayUnderTest, make_config, running_gateway
from tests.gateway.flows import adult, issue, rich

CUSTODIAN = frozenset({OperatorRole.KEY_CUSTODIAN})
SECOND_TOKEN = "token-of-the-second-operator-" + "y" * 12
SECOND = (("authorization", f"Bearer {SECOND_TOKEN}"),)


@pytest.fixture
async def two_operators(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> AsyncIterator[GatewayUnderTest]:
    operators = (
        OperatorConfig("ops", token_sha256=token_digest(OPERATOR_TOKEN), roles=CUSTODIAN),
        OperatorConfig("ops-2", token_sha256=token_digest(SECOND_TOKEN), roles=CUSTODIAN),
    )
    async with running_gateway(platform, clock, make_config(database, operators=operators)) as gw:
        yield gw


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def test_an_export_needs_a_second_operator_and_leaves_sealed_to_the_recipient(
    two_operators: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    gw = two_operators
    issued = await issue(gw, adult(population, clock.now().date()), gw.a, clock.now())
    recipient = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    asked = await gw.operator.RequestKeyAction(
        opb.RequestKeyActionRequest(
            kind=opb.KEY_ACTION_KIND_EXPORT, bank_id="bank-a", purpose=opb.KEY_PURPOSE_DATA,
            version=1, recipient_public_key=_pem(recipient),
        ),
        metadata=gw.ops,
    )  # fmt: skip
    approve = opb.ApproveKeyActionRequest(action_id=asked.action.action_id)
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # the one who asked
        await gw.operator.ApproveKeyAction(approve, metadata=gw.ops)
    assert rich(raised.value).reason == "KEY_ACTION_NEEDS_SECOND_OPERATOR"
    approved = await gw.operator.ApproveKeyAction(approve, metadata=SECOND)
    assert (approved.action.requested_by, approved.action.approved_by) == ("ops", "ops-2")
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # once only
        await gw.operator.ApproveKeyAction(approve, metadata=SECOND)
    assert rich(raised.value).reason == "KEY_ACTION_NEEDS_SECOND_OPERATOR"
    data_key = recipient.decrypt(
        approved.exported_key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    # It is the DATA key: it opens the holder key it sealed.
    store = gw.gateway._store
    assert store is not None
    card = await store.get_card(issued.card.essc_id)
    assert card is not None
    holder_key = await store.holder_key("bank-a", card.holder_token)
    assert holder_key is not None
    suite = Suite.AES256_GCM_HMAC_SHA256
    data = KeySet({1: SealingKey(1, suite, aead(suite, data_key))}, current=1)
    keyring = BankKeyring("bank-a", data, data, {}, 1)
    raw = keyring.open(holder_key.wrapped[1:], "holder_keys\x1f" + holder_key.key_id)
    assert len(raw) == 32
    entries = await store.log_entries_for(EntryKind.KEY_EVENT, ["bank-a/DATA/v1"])
    events = [json.loads(e.body) for e in entries]
    assert [e["event"] for e in events][-2:] == ["ACTION_REQUESTED", "EXPORTED"]
    assert "asked by ops, approved by ops-2" in events[-1]["detail"]


async def test_a_weak_recipient_key_and_destroying_a_key_in_use_are_refused(
    two_operators: GatewayUnderTest,
) -> None:
    gw = two_operators
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.RequestKeyAction(
            opb.RequestKeyActionRequest(
                kind=opb.KEY_ACTION_KIND_EXPORT, bank_id="bank-a", purpose=opb.KEY_PURPOSE_DATA,
                version=1, recipient_public_key=_pem(weak),
            ),
            metadata=gw.ops,
        )  # fmt: skip
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich(raised.value).violations == {"recipient_public_key": "WEAK_KEY"}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.RequestKeyAction(
            opb.RequestKeyActionRequest(
                kind=opb.KEY_ACTION_KIND_DESTROY, bank_id="bank-a",
                purpose=opb.KEY_PURPOSE_TOKENS, version=1,
            ),
            metadata=gw.ops,
        )  # fmt: skip
    assert rich(raised.value).reason == "KEY_IN_USE"


async def test_a_retired_key_is_destroyed_by_two_operators(
    two_operators: GatewayUnderTest, clock: FakeClock
) -> None:
    gw = two_operators
    tokens = opb.KEY_PURPOSE_TOKENS
    await gw.operator.RotateKey(
        opb.RotateKeyRequest(bank_id="bank-a", purpose=tokens), metadata=gw.ops
    )
    clock.advance(timedelta(days=1))  # every token of v1 has expired
    await gw.operator.RetireKey(
        opb.RetireKeyRequest(bank_id="bank-a", purpose=tokens, version=1), metadata=gw.ops
    )
    asked = await gw.operator.RequestKeyAction(
        opb.RequestKeyActionRequest(
            kind=opb.KEY_ACTION_KIND_DESTROY, bank_id="bank-a", purpose=tokens, version=1
        ),
        metadata=SECOND,
    )
    await gw.operator.ApproveKeyAction(
        opb.ApproveKeyActionRequest(action_id=asked.action.action_id), metadata=gw.ops
    )
    status = await gw.operator.GetKeyStatus(opb.GetKeyStatusRequest(), metadata=gw.ops)
    [destroyed] = [k for k in status.keys if k.key_id == "bank-a/TOKENS/v1"]
    assert destroyed.state == opb.KEY_STATE_DESTROYED
    store = gw.gateway._store
    assert store is not None
    [stored] = [v for v in await store.key_versions() if v.key_id == "bank-a/TOKENS/v1"]
    assert stored.wrapped == b""

    # A destroyed version stays destroyed: declaring it compromised or retiring it is
    # refused, and the keys still load (a row claiming it would break every replica).
    for change in (
        gw.operator.DeclareKeyCompromised(
            opb.DeclareKeyCompromisedRequest(
                bank_id="bank-a", purpose=tokens, version=1, reason="found on a laptop"
            ),
            metadata=gw.ops,
        ),
        gw.operator.RetireKey(
            opb.RetireKeyRequest(bank_id="bank-a", purpose=tokens, version=1), metadata=gw.ops
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await change
        assert rich(refused.value).code == grpc.StatusCode.FAILED_PRECONDITION
        assert rich(refused.value).reason == "KEY_IN_USE"
    assert gw.gateway.keys is not None
    await gw.gateway.keys.reload()
    status = await gw.operator.GetKeyStatus(opb.GetKeyStatusRequest(), metadata=gw.ops)
    [still] = [k for k in status.keys if k.key_id == "bank-a/TOKENS/v1"]
    assert still.state == opb.KEY_STATE_DESTROYED


async def test_a_compromised_bank_key_is_not_destroyed_while_keys_below_need_it(
    two_operators: GatewayUnderTest,
) -> None:
    gw = two_operators
    await gw.operator.DeclareKeyCompromised(
        opb.DeclareKeyCompromisedRequest(
            bank_id="bank-a", purpose=opb.KEY_PURPOSE_BANK, version=1, reason="test"
        ),
        metadata=gw.ops,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.RequestKeyAction(
            opb.RequestKeyActionRequest(
                kind=opb.KEY_ACTION_KIND_DESTROY, bank_id="bank-a",
                purpose=opb.KEY_PURPOSE_BANK, version=1,
            ),
            metadata=gw.ops,
        )  # fmt: skip
    assert rich(raised.value).reason == "KEY_IN_USE"
    # The bank key rotates again: the keys below the compromised one are re-wrapped.
    rotated = await gw.operator.RotateKey(
        opb.RotateKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_BANK), metadata=gw.ops
    )
    assert rotated.key.key_id == "bank-a/BANK/v3"
