"""Helpers for the fault-injection tests: stubs, decoded error answers, waiting."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.simplatform import Person

CHECK_REAL_NAME = "/essc.platform.v1.IdentityService/CheckRealName"
GET_ACCOUNTS = "/essc.platform.v1.RecordsService/GetAccounts"
ISSUE_CARD = "/essc.platform.v1.CardService/IssueCard"
DETAILS_KEY = "grpc-status-details-bin"
# A channel of its own (no shared subchannel) that reconnects quickly after a fault ends.
FRESH_CHANNEL = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
)


@dataclass(frozen=True)
class Stubs:
    identity: pb_grpc.IdentityServiceAsyncStub
    cards: pb_grpc.CardServiceAsyncStub
    records: pb_grpc.RecordsServiceAsyncStub
    auth: pb_grpc.AuthServiceAsyncStub
    operations: pb_grpc.OperationServiceAsyncStub

    @classmethod
    def over(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            identity=pb_grpc.IdentityServiceStub(channel),
            cards=pb_grpc.CardServiceStub(channel),
            records=pb_grpc.RecordsServiceStub(channel),
            auth=pb_grpc.AuthServiceStub(channel),
            operations=pb_grpc.OperationServiceStub(channel),
        )


@dataclass
class Answer:
    """A failed call, with the platform's google.rpc details decoded (when it sent any)."""

    code: grpc.StatusCode
    message: str
    has_details: bool = False
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    trailing_keys: tuple[str, ...] = ()


def answer(error: grpc.aio.AioRpcError) -> Answer:
    trailing = tuple(error.trailing_metadata() or ())
    result = Answer(
        code=error.code(),
        message=error.details() or "",
        trailing_keys=tuple(key for key, _ in trailing),
    )
    for key, value in trailing:
        if key != DETAILS_KEY:
            continue
        assert isinstance(value, bytes)
        status = status_pb2.Status.FromString(value)
        result.has_details = True
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                result.reason, result.domain = info.reason, info.domain
                result.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                result.retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    return result


async def failure(call: Awaitable[object]) -> Answer:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return answer(caught.value)


async def outcome(call: Awaitable[object]) -> str:
    """ "OK" or the status code name: a call's outcome, for comparing runs."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return "OK"


def scenario(*rules: dict[str, Any], seed: int = 1) -> dict[str, Any]:
    """A scenario in its JSON form."""
    return {"seed": seed, "rules": list(rules)}


def name_check(person: Person) -> pb.CheckRealNameRequest:
    return pb.CheckRealNameRequest(
        name=person.name, id_number=person.id_number, mobile_phone=person.mobile_phone
    )


def issue_request(person: Person, key: str) -> pb.IssueCardRequest:
    return pb.IssueCardRequest(
        idempotency_key=key,
        bank_id="bank-a",
        id_number=person.id_number,
        name=person.name,
        mobile_phone=person.mobile_phone,
        card_number=person.card_number,
    )
