"""Fixtures for the fault-injection tests: a platform on a fake clock, both planes dialled.

Time on the platform's clock moves only by `clock.advance`; deadlines and latencies are
real time (asyncio, gRPC), so hangs and delays still end.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import grpc
import pytest

from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.simplatform import Person, Population, SimulatedPlatform
from essc_gateway.testing import FakeClock
from tests.simplatform.helpers import FRESH_CHANNEL, Stubs


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def platform(population: Population, clock: FakeClock) -> AsyncIterator[SimulatedPlatform]:
    async with SimulatedPlatform(population, clock=clock, rng=random.Random(5)) as running:
        yield running


@pytest.fixture
async def data_channel(platform: SimulatedPlatform) -> AsyncIterator[grpc.aio.Channel]:
    """Through the network front (`address`), as the gateway dials it."""
    async with grpc.aio.insecure_channel(platform.address, options=FRESH_CHANNEL) as channel:
        yield channel


@pytest.fixture
def data(data_channel: grpc.aio.Channel) -> Stubs:
    return Stubs.over(data_channel)


@pytest.fixture
async def control(platform: SimulatedPlatform) -> AsyncIterator[pb_grpc.ControlServiceAsyncStub]:
    """ControlService on the gRPC server itself: it works whatever the network does."""
    async with grpc.aio.insecure_channel(platform.control_address) as channel:
        yield pb_grpc.ControlServiceStub(channel)


@pytest.fixture
def person(population: Population) -> Person:
    return population.samples(population.as_of, 1)[0]
