"""The service config's retry policy, against a tiny scripted GatewayService on port 0."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc
from essc_gateway_client import (
    ClientConfig,
    DeadlineExceeded,
    GatewayCallError,
    GatewayClient,
    Unavailable,
)


def _maintenance_status() -> grpc.Status:
    """What the gateway answers inside a maintenance window: UNAVAILABLE with RetryInfo."""
    info, retry = any_pb2.Any(), any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason="MAINTENANCE_WINDOW", domain="essc-gateway.v1", metadata={"window_id": "w1"}
        )
    )
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=1800)))
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.UNAVAILABLE, message="maintenance in progress", details=[info, retry]
        )
    )
    return status


class Scripted(gateway_pb2_grpc.GatewayServiceServicer):
    """Fails the first `failures` calls of each RPC as told, then succeeds; counts attempts."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.failures = 1
        self.answer = "plain"  # plain, maintenance, maintenance+pushback, hang, garbled
        self.released = asyncio.Event()

    async def _fail_or_pass(self, rpc: str, context: grpc.aio.ServicerContext) -> None:  # type: ignore[type-arg]
        self.attempts[rpc] += 1
        if self.attempts[rpc] > self.failures:
            return
        if self.answer == "hang":
            await self.released.wait()
            return
        if self.answer == "garbled":
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "garbled",
                trailing_metadata=(("grpc-status-details-bin", b"\xff\xff not a status"),),
            )
        if self.answer.startswith("maintenance"):
            status = _maintenance_status()
            trailers = tuple(status.trailing_metadata)
            if self.answer.endswith("pushback"):
                # gRFC A6: a negative pushback tells the client not to retry.
                trailers += (("grpc-retry-pushback-ms", "-1"),)
            await context.abort(status.code, status.details, trailing_metadata=trailers)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "connection to the platform reset")

    async def Verify(  # noqa: N802
        self,
        request: pb.VerifyRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> pb.VerifyResponse:
        await self._fail_or_pass("Verify", context)
        return pb.VerifyResponse(verified=True)

    async def RequestSmsCode(  # noqa: N802
        self,
        request: pb.RequestSmsCodeRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> pb.RequestSmsCodeResponse:
        await self._fail_or_pass("RequestSmsCode", context)
        return pb.RequestSmsCodeResponse()

    async def Authenticate(  # noqa: N802
        self,
        request: pb.AuthenticateRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> pb.AuthenticateResponse:
        await self._fail_or_pass("Authenticate", context)
        return pb.AuthenticateResponse()

    async def Issue(  # noqa: N802
        self,
        request: pb.IssueRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> pb.IssueResponse:
        await self._fail_or_pass("Issue", context)
        return pb.IssueResponse(outcome=pb.ISSUE_OUTCOME_ISSUED)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    servicer = Scripted()  # type: ignore[abstract]  # the other RPCs answer UNIMPLEMENTED
    server = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    servicer.released.set()
    await server.stop(0)


async def test_a_read_that_fails_once_with_unavailable_is_retried_and_succeeds(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    async with GatewayClient(ClientConfig(target)) as client:
        reply = await client.verify(pb.VerifyRequest())
    assert reply.verified
    assert servicer.attempts["Verify"] == 2


async def test_a_keyed_write_is_retried(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    async with GatewayClient(ClientConfig(target)) as client:
        reply = await client.issue(pb.IssueRequest(idempotency_key="k" * 16))
    assert reply.outcome == pb.ISSUE_OUTCOME_ISSUED
    assert servicer.attempts["Issue"] == 2


async def test_retries_stop_after_three_attempts(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    servicer.failures = 10
    async with GatewayClient(ClientConfig(target)) as client:
        with pytest.raises(Unavailable):
            await client.verify(pb.VerifyRequest())
    assert servicer.attempts["Verify"] == 3


@pytest.mark.parametrize("rpc", ["RequestSmsCode", "Authenticate"])
async def test_sms_and_authentication_are_never_retried(
    scripted: tuple[Scripted, str], rpc: str
) -> None:
    servicer, target = scripted
    async with GatewayClient(ClientConfig(target)) as client:
        call = (
            client.request_sms_code(pb.RequestSmsCodeRequest())
            if rpc == "RequestSmsCode"
            else client.authenticate(pb.AuthenticateRequest())
        )
        with pytest.raises(Unavailable) as raised:
            await call
    assert raised.value.message == "connection to the platform reset"
    assert raised.value.reason == ""
    assert servicer.attempts[rpc] == 1


async def test_retries_can_be_turned_off(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    async with GatewayClient(ClientConfig(target, retries=False)) as client:
        with pytest.raises(Unavailable):
            await client.verify(pb.VerifyRequest())
    assert servicer.attempts["Verify"] == 1


async def test_a_maintenance_answer_is_resent_by_grpcio_then_raised_with_retry_after(
    scripted: tuple[Scripted, str],
) -> None:
    # grpcio reads only grpc-retry-pushback-ms, not RetryInfo: without that trailer a
    # maintenance answer uses up every attempt before it surfaces.
    servicer, target = scripted
    servicer.failures = 10
    servicer.answer = "maintenance"
    async with GatewayClient(ClientConfig(target)) as client:
        with pytest.raises(Unavailable) as raised:
            await client.verify(pb.VerifyRequest())
    assert servicer.attempts["Verify"] == 3
    assert raised.value.is_maintenance
    assert raised.value.retry_after == timedelta(seconds=1800)
    assert raised.value.metadata == {"window_id": "w1"}


async def test_a_negative_pushback_stops_grpcio_retrying(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    servicer.failures = 10
    servicer.answer = "maintenance+pushback"
    async with GatewayClient(ClientConfig(target)) as client:
        with pytest.raises(Unavailable) as raised:
            await client.verify(pb.VerifyRequest())
    assert servicer.attempts["Verify"] == 1
    assert raised.value.is_maintenance


async def test_the_clients_own_deadline_raises_deadline_exceeded_without_a_reason(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.answer = "hang"
    async with GatewayClient(ClientConfig(target, timeouts={"Issue": 0.2})) as client:
        with pytest.raises(DeadlineExceeded) as raised:
            await client.issue(pb.IssueRequest())
    error = raised.value
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.reason == ""
    assert error.client_side
    assert error.is_in_doubt  # the gateway may have acted: repeat with the same key


async def test_a_garbled_details_trailer_still_decodes_the_status(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.answer = "garbled"
    async with GatewayClient(ClientConfig(target)) as client:
        with pytest.raises(Unavailable) as raised:
            await client.request_sms_code(pb.RequestSmsCodeRequest())
    assert raised.value.message == "garbled"
    assert raised.value.reason == ""


async def test_an_unimplemented_rpc_raises_the_base_error(scripted: tuple[Scripted, str]) -> None:
    _, target = scripted
    async with GatewayClient(ClientConfig(target)) as client:
        with pytest.raises(GatewayCallError) as raised:
            await client.query(pb.QueryRequest())
    assert type(raised.value) is GatewayCallError
    assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED
