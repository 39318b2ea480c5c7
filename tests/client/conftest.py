"""Clients of the real gateway of `tests.conftest.gw`, as a bank and as the operator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from essc_gateway_client import ClientConfig, GatewayClient, OperatorClient
from tests.conftest import BANK_A_TOKEN, OPERATOR_TOKEN, GatewayUnderTest


@pytest.fixture
async def bank(gw: GatewayUnderTest) -> AsyncIterator[GatewayClient]:
    config = ClientConfig(f"127.0.0.1:{gw.gateway.port}", token=BANK_A_TOKEN)
    async with GatewayClient(config) as client:
        yield client


@pytest.fixture
async def operator(gw: GatewayUnderTest) -> AsyncIterator[OperatorClient]:
    config = ClientConfig(f"127.0.0.1:{gw.gateway.port}", token=OPERATOR_TOKEN)
    async with OperatorClient(config) as client:
        yield client
