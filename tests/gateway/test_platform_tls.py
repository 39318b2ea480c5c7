"""mTLS to the national platform: the gateway presents its client certificate and checks the
platform's against the configured CA; without the certificate the platform refuses it, and
the refusal is a platform that could not be reached, never a hang or a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.config import PlatformTls
from essc_gateway.dev_pki import Pem
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.simplatform.server import ServerTls
from essc_gateway.testing import FakeClock
from tests.certs import make_pki
from tests.conftest import BANK_A_TOKEN, make_config
from tests.gateway.flows import adult, rich, verify

BANK_A = (("authorization", f"Bearer {BANK_A_TOKEN}"),)


class _Stubbed:
    def __init__(self, stub: gateway_pb2_grpc.GatewayServiceAsyncStub) -> None:
        self.stub = stub


@pytest.fixture
async def tls_platform(
    population: Population, tmp_path: Path
) -> AsyncIterator[tuple[SimulatedPlatform, Path, Pem]]:
    ca, server, clients = make_pki(tmp_path, ("gateway-client",))
    platform = SimulatedPlatform(population)
    await platform.start(tls=ServerTls(server.cert, server.key, ca))
    yield platform, ca, clients["gateway-client"]
    await platform.stop(0)


async def _verify_through(
    platform: SimulatedPlatform, tls: PlatformTls, population: Population, clock: FakeClock,
    tmp_path: Path,
) -> bool:  # fmt: skip
    config = make_config(tmp_path / "gateway.db", platform_tls=tls)
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = _Stubbed(gateway_pb2_grpc.GatewayServiceStub(channel))
            person = adult(population, clock.now().date())
            reply = await verify(stub, person, BANK_A)  # type: ignore[arg-type]
            return bool(reply.verified)
    finally:
        await gateway.stop(0)


async def test_the_gateway_reaches_the_platform_with_its_client_certificate(
    tls_platform: tuple[SimulatedPlatform, Path, Pem],
    population: Population,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    platform, ca, client = tls_platform
    tls = PlatformTls(ca, client.cert, client.key, server_name="localhost")
    assert await _verify_through(platform, tls, population, clock, tmp_path)


async def test_without_a_client_certificate_the_platform_is_unreachable(
    tls_platform: tuple[SimulatedPlatform, Path, Pem],
    population: Population,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    platform, ca, _ = tls_platform
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _verify_through(
            platform, PlatformTls(ca, server_name="localhost"), population, clock, tmp_path
        )
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert rich(raised.value).reason.startswith("PLATFORM_")
