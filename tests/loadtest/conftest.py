"""Load options aimed at the real gateway of `tests.conftest.gw`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from essc_gateway.loadtest import LoadOptions
from essc_gateway.testing import FakeClock
from tests.conftest import BANK_A_TOKEN, POPULATION_SEED, GatewayUnderTest

# The test gateway's FakeClock stands at its default start: consents must lie neither in its
# future nor more than 30 days before it (A1), while the harness dates them by real time.
CONSENT_AGE = max((datetime.now(UTC) - FakeClock().now()).total_seconds() + 3600.0, 0.0)


@pytest.fixture
def base_options(gw: GatewayUnderTest, tmp_path: Path) -> LoadOptions:
    """Plain, picklable options for a tiny load; tests replace what they vary."""
    return LoadOptions(
        target=f"127.0.0.1:{gw.gateway.port}",
        token=BANK_A_TOKEN,
        seed=POPULATION_SEED,
        population_size=400,
        holders=4,
        workers=0,
        count=40,
        concurrency=4,
        timeout=5.0,
        consent_age=CONSENT_AGE,
        json_path=tmp_path / "load.json",
        csv_path=tmp_path / "load.csv",
        html_path=tmp_path / "load.html",
        summary=False,
    )
