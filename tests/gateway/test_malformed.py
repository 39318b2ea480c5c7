"""Request bodies that are not valid protobuf for their method (issue 10, defect 1): every
method answers INVALID_ARGUMENT / MALFORMED_REQUEST, logs one line without a traceback,
records the failure against an identified bank, and bounds what anonymous traffic logs."""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from essc.gateway.v1 import gateway_pb2, operator_pb2
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import rich

GATEWAY_METHODS = list(gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods)
OPERATOR_METHODS = list(operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].methods)

# Each is refused by the protobuf parser for every request type.
MALFORMED_BODIES = {
    "truncated varint": b"\x08",
    "truncated length": b"\x0a\x05ab",
    "tag 0": b"\x00\x01",
    "wire type 6": b"\x0e",
    "wire type 7": b"\x0f",
    "unmatched start group": b"\x0b",
    "unmatched end group": b"\x0c",
    "deep nesting": b"\x7b" * 300 + b"\x7c" * 300,
}


def bodies_for(method: MethodDescriptor) -> dict[str, bytes]:
    """The malformed bodies, plus invalid UTF-8 in each string field of the request, that
    protobuf's own parser refuses for this request type (it accepts tag 0 for a few)."""
    bodies = dict(MALFORMED_BODIES)
    for field in method.input_type.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            bodies[f"invalid UTF-8 in {field.name}"] = bytes([field.number << 3 | 2, 2, 0xFF, 0xFE])
    message = method.input_type._concrete_class
    refused = {}
    for name, body in bodies.items():
        try:
            message.FromString(body)
        except DecodeError:
            refused[name] = body
    assert len(refused) >= len(MALFORMED_BODIES) - 1
    return refused


def raw(channel: grpc.aio.Channel, method: MethodDescriptor) -> grpc.aio.UnaryUnaryMultiCallable:
    path = f"/{method.containing_service.full_name}/{method.name}"
    return channel.unary_unary(path)  # bytes in, bytes out: no serializer on our side


@pytest.mark.parametrize("method", GATEWAY_METHODS, ids=lambda m: m.name)
async def test_undecodable_bodies_answer_malformed_request_with_a_ledger_record(
    gw: GatewayUnderTest, method: MethodDescriptor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bodies = bodies_for(method)
    for name, body in bodies.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw(gw.channel, method)(body, metadata=gw.a, timeout=5)
        answer = rich(raised.value)
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert answer.reason == "MALFORMED_REQUEST", name
        assert answer.metadata["ledger_request_id"], name  # A16: the failure is evidenced
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    access = [r for r in caplog.records if r.name == "essc_gateway.access"]
    assert len(access) == len(bodies)
    assert all("reason=MALFORMED_REQUEST" in r.getMessage() for r in access)


@pytest.mark.parametrize("method", OPERATOR_METHODS, ids=lambda m: m.name)
async def test_undecodable_operator_bodies_answer_malformed_request(
    gw: GatewayUnderTest, method: MethodDescriptor, caplog: pytest.LogCaptureFixture
) -> None:
    for name, body in bodies_for(method).items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw(gw.channel, method)(body, metadata=gw.ops, timeout=5)
        assert rich(raised.value).code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert rich(raised.value).reason == "MALFORMED_REQUEST", name
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_anonymous_undecodable_bodies_are_refused_and_their_logging_is_bounded(
    gw: GatewayUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    verify = raw(gw.channel, GATEWAY_METHODS[0])
    calls = 200
    started = time.monotonic()
    for _ in range(calls):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await verify(b"\x08", timeout=5)
        answer = rich(raised.value)
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "ledger_request_id" not in answer.metadata  # no bank to hold liable
    seconds = time.monotonic() - started
    access = [r for r in caplog.records if r.name == "essc_gateway.access"]
    # 20 lines a second at most, and a summary line per second that suppressed some (the
    # budget's own arithmetic is tested with a fake clock in test_log_budget.py).
    assert len(access) <= 21 * (int(seconds) + 2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/grpc.health.v1.Health/Check", "unary"),
        ("/grpc.health.v1.Health/Watch", "server stream"),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "bidi stream"),
    ],
)
async def test_undecodable_bodies_to_health_and_reflection_are_refused_quietly(
    gw: GatewayUnderTest, caplog: pytest.LogCaptureFixture, path: str, kind: str
) -> None:
    body = MALFORMED_BODIES["truncated varint"]

    async def call() -> None:
        if kind == "unary":
            await gw.channel.unary_unary(path)(body, timeout=5)
        elif kind == "server stream":
            async for _ in gw.channel.unary_stream(path)(body, timeout=5):
                pass
        else:
            async for _ in gw.channel.stream_stream(path)(iter([body]), timeout=5):
                pass

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich(raised.value).reason == "MALFORMED_REQUEST"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_health_watch_still_streams_for_a_valid_request(gw: GatewayUnderTest) -> None:

    watch = health_pb2_grpc.HealthStub(gw.channel).Watch(health_pb2.HealthCheckRequest())
    first = await watch.read()
    watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
