"""The server around the service: health, reflection, mTLS bank identity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from essc.gateway.v1 import gateway_pb2_grpc
from essc.platform.v1 import platform_pb2 as ppb
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig, TlsConfig
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.testing import FakeClock
from essc_gateway.upstream.retrying import RetrySettings
from tests.certs import make_pki
from tests.conftest import BANK_A_TOKEN, GatewayUnderTest, make_config
from tests.gateway.flows import adult, verify
from tests.polling import eventually


async def test_health_reports_serving_for_the_server_and_each_service(
    gw: GatewayUnderTest,
) -> None:
    health = health_pb2_grpc.HealthStub(gw.channel)
    for service in ("", "essc.gateway.v1.GatewayService", "essc.gateway.v1.OperatorService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_gateway_service(gw: GatewayUnderTest) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(gw.channel)

    async def requests():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for reply in stub.ServerReflectionInfo(requests()):
        names = {s.name for s in reply.list_services_response.service}
        assert "essc.gateway.v1.GatewayService" in names
        assert "grpc.health.v1.Health" in names


async def test_reflection_v1_answers_as_v1alpha_does(gw: GatewayUnderTest) -> None:
    call = gw.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="essc.gateway.v1.GatewayService"
        )

    replies = [reply async for reply in call(requests())]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {
        "essc.gateway.v1.GatewayService",
        "essc.gateway.v1.OperatorService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto


async def test_mtls_identifies_the_bank_by_its_client_certificate(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    ca, server, clients = make_pki(tmp_path, ("bank-c-client", "stranger"))
    config = make_config(
        tmp_path / "tls.db",
        banks=(BankConfig("bank-c", certificate_subject="bank-c-client"),),
        tls=TlsConfig(cert_file=server.cert, key_file=server.key, client_ca_file=ca),
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    target = f"127.0.0.1:{port}"
    options = (("grpc.ssl_target_name_override", "localhost"),)

    def credentials(name: str | None) -> grpc.ChannelCredentials:
        if name is None:
            return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        return grpc.ssl_channel_credentials(
            root_certificates=ca.read_bytes(),
            private_key=clients[name].key.read_bytes(),
            certificate_chain=clients[name].cert.read_bytes(),
        )

    try:
        person = adult(population, clock.now().date())
        async with grpc.aio.secure_channel(target, credentials("bank-c-client"), options) as ch:
            stub = gateway_pb2_grpc.GatewayServiceStub(ch)
            holder = _Stubbed(stub)
            assert (await verify(holder, person, ())).verified  # type: ignore[arg-type]

        async with grpc.aio.secure_channel(target, credentials("stranger"), options) as ch:
            stub = gateway_pb2_grpc.GatewayServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await verify(_Stubbed(stub), person, ())  # type: ignore[arg-type]
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED

        async with grpc.aio.secure_channel(target, credentials(None), options) as ch:
            stub = gateway_pb2_grpc.GatewayServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await verify(_Stubbed(stub), person, ())  # type: ignore[arg-type]
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused

        # Probes cannot do TLS: health is served in plaintext on its own port.
        assert gateway.health_port is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.health_port}") as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gateway.stop(0)


class _Stubbed:
    """Just enough of GatewayUnderTest for `flows.verify`."""

    def __init__(self, stub: gateway_pb2_grpc.GatewayServiceAsyncStub) -> None:
        self.stub = stub


async def test_a_draining_gateway_says_not_serving_on_its_health_port(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    config = make_config(
        tmp_path / "drain.db", health_port=0, retry=RetrySettings(attempt_timeout=5.0)
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    assert gateway.health_port is not None
    control = platform_pb2_grpc.ControlServiceStub(
        grpc.aio.insecure_channel(platform.control_address)
    )
    await control.SetLatency(
        ppb.SetLatencyRequest(
            method="/essc.platform.v1.IdentityService/CheckRealName", base={"seconds": 1}
        )
    )
    person = adult(population, clock.now().date())
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{gateway.health_port}") as probe,
    ):
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        bank = (("authorization", f"Bearer {BANK_A_TOKEN}"),)
        in_flight = asyncio.ensure_future(verify(_Stubbed(stub), person, bank))  # type: ignore[arg-type]

        async def waiting_on_the_platform() -> bool:
            counts = (await control.GetCallCounts(ppb.GetCallCountsRequest())).counts
            return bool(counts.get("/essc.platform.v1.IdentityService/CheckRealName"))

        await eventually(waiting_on_the_platform)
        stopping = asyncio.ensure_future(gateway.stop(5))
        health = health_pb2_grpc.HealthStub(probe)

        async def not_serving() -> bool:
            reply = await health.Check(health_pb2.HealthCheckRequest())
            return reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

        await eventually(not_serving, within=1.0)  # the drain takes a second: still in it
        assert (await in_flight).verified  # the call in flight finished in the drain
        await stopping
