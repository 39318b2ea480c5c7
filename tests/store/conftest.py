"""The contract suites' store: each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import GatewayStore, open_store
from tests.databases import BACKENDS, location_for


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    return location_for(request.param, tmp_path, request)


@pytest.fixture
async def any_store(location: StoreLocation) -> AsyncIterator[GatewayStore]:
    opened = await open_store(location)
    yield opened
    await opened.close()
