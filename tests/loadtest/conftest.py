"""Load options aimed at the real gateway of `tests.conftest.gw`."""

from __future__ import annotations

from pathlib import Path

import pytest

from essc_gateway.loadtest import LoadOptions
from tests.conftest import BANK_A_TOKEN, POPULATION_SEED, GatewayUnderTest

# The test gateway's FakeClock stands on 2026-11-02: consents must not lie in its future.
CONSENT_AGE = 400 * 86400.0


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
