"""The gateway protects itself: per-bank rate limits and a bound on requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc
from essc.platform.v1 import platform_pb2 as ppb
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from essc_gateway.transport.admission import RateLimit
from essc_gateway.transport.banks import token_digest
from tests.conftest import BANK_A_TOKEN, make_config
from tests.gateway.flows import adult, identity, live_sample, rich

META = (("authorization", f"Bearer {BANK_A_TOKEN}"),)


@asynccontextmanager
async def _gateway(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation, **overrides: object
) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceAsyncStub]:
    gateway = Gateway(make_config(database, **overrides), platform.address, clock)
    port = await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield gateway_pb2_grpc.GatewayServiceStub(channel)
    finally:
        await gateway.stop(0)


@pytest.fixture
async def limited(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceAsyncStub]:
    bank = BankConfig(
        "bank-a",
        token_sha256=token_digest(BANK_A_TOKEN),
        rate_limit=RateLimit(per_second=0.5, burst=2),
    )
    async with _gateway(platform, clock, database, banks=(bank,)) as stub:
        yield stub


async def test_a_bank_over_its_rate_limit_is_shed_with_a_retry_delay(
    limited: gateway_pb2_grpc.GatewayServiceAsyncStub,
) -> None:
    request = pb.RequestSmsCodeRequest(
        social_security_number="11010519491231002X", scenario=pb.BUSINESS_SCENARIO_PAYMENT
    )
    codes = []
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await limited.RequestSmsCode(request, metadata=META)
        codes.append(rich(raised.value))
    assert [c.code for c in codes[:2]] == [grpc.StatusCode.NOT_FOUND] * 2
    assert codes[2].code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert codes[2].reason == "RATE_LIMITED"
    assert codes[2].retry_seconds is not None
    assert 0 < codes[2].retry_seconds <= 2


async def test_requests_beyond_the_in_flight_bound_are_shed_at_once(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation, population: Population
) -> None:
    async with grpc.aio.insecure_channel(platform.control_address) as control_channel:
        control = platform_pb2_grpc.ControlServiceStub(control_channel)
        await control.SetLatency(
            ppb.SetLatencyRequest(
                method="/essc.platform.v1.IdentityService/CheckRealName",
                base={"nanos": 300_000_000},
            )
        )
    person = adult(population, clock.now().date())
    request = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    async with _gateway(platform, clock, database, max_in_flight=1) as stub:
        results = await asyncio.gather(
            *(stub.Verify(request, metadata=META) for _ in range(2)), return_exceptions=True
        )
        shed = [rich(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
        served = [r for r in results if isinstance(r, pb.VerifyResponse)]
        assert len(served) == 1
        assert served[0].verified
        assert [s.reason for s in shed] == ["OVERLOADED"]
        assert shed[0].code == grpc.StatusCode.RESOURCE_EXHAUSTED
