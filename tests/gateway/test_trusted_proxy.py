"""Behind a TLS-terminating proxy the gateway sees no certificate: the proxy passes the
verified client's common name in a header, believed only from the configured proxy
addresses and refused from anyone else (issue 11)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.testing import FakeClock
from essc_gateway.transport.banks import TrustedProxy
from tests.conftest import make_config
from tests.gateway.flows import adult, identity, live_sample, rich

HEADER = "x-essc-client-cn"


@asynccontextmanager
async def _gateway(
    platform: SimulatedPlatform, clock: FakeClock, tmp_path: Path, proxy: TrustedProxy | None
) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceAsyncStub]:
    config = make_config(
        tmp_path / "proxy.db",
        banks=(BankConfig("bank-c", certificate_subject="bank-c-client"),),
        trusted_proxy=proxy,
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield gateway_pb2_grpc.GatewayServiceStub(channel)
    finally:
        await gateway.stop(0)


def _request(population: Population, clock: FakeClock) -> pb.VerifyRequest:
    person = adult(population, clock.now().date())
    return pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )


def _proxy(network: str) -> TrustedProxy:
    return TrustedProxy(networks=(ipaddress.ip_network(network),), identity_header=HEADER)


async def test_the_identity_header_of_the_trusted_proxy_identifies_the_bank(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    async with _gateway(platform, clock, tmp_path, _proxy("127.0.0.1/32")) as stub:
        reply = await stub.Verify(
            _request(population, clock), metadata=((HEADER, "bank-c-client"),)
        )
        assert reply.verified
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.Verify(_request(population, clock), metadata=((HEADER, "stranger"),))
        assert rich(unknown.value).reason == "BANK_UNAUTHENTICATED"


@pytest.mark.parametrize("proxy", [_proxy("10.0.0.0/8"), None], ids=["other-proxy", "no-proxy"])
async def test_the_identity_header_from_anyone_else_is_refused(
    platform: SimulatedPlatform,
    population: Population,
    clock: FakeClock,
    tmp_path: Path,
    proxy: TrustedProxy | None,
) -> None:
    async with _gateway(platform, clock, tmp_path, proxy) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Verify(_request(population, clock), metadata=((HEADER, "bank-c-client"),))
    error = rich(raised.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "UNTRUSTED_IDENTITY_HEADER"


def test_a_peer_is_a_proxy_only_inside_the_configured_networks() -> None:
    proxy = TrustedProxy(
        networks=(ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8"))
    )
    assert proxy.trusts("ipv4:10.1.2.3:40000")
    assert not proxy.trusts("ipv4:10.2.0.1:40000")
    # gRPC writes IPv6 peers with the brackets percent-encoded.
    assert proxy.trusts("ipv6:%5Bfd00::5%5D:40000")
    assert not proxy.trusts("ipv6:%5B::1%5D:40000")
    assert proxy.trusts("ipv6:%5B::ffff:10.1.2.3%5D:40000")  # IPv4 on a dual-stack listener
    assert not proxy.trusts("ipv6:%5B::ffff:10.2.0.1%5D:40000")
    assert proxy.trusts("ipv6:%5Bfd00::5%25eth0%5D:40000")  # with a zone index
    assert not proxy.trusts("unix:/tmp/socket")
    assert not proxy.trusts("ipv4:not-an-address:1")
