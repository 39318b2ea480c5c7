"""The benchmark's reference points make the platform calls the gateway makes: for each RPC,
the platform called directly (`PlatformWorkload`) and the fan-out floor (`bench.targets`)
stand for as many calls per request as one gateway request costs the platform. A gateway
that adds or drops a call shows here, not as a silently wrong "own CPU above the floor"."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from essc_gateway.bench.targets import TARGETS
from essc_gateway.loadtest import LoadOptions, run_load
from essc_gateway.simplatform import SimulatedPlatform

REQUESTS = 6


async def _platform_calls_per_request(options: LoadOptions, platform: SimulatedPlatform) -> float:
    """Platform calls in the measured phase (the holders' set-up excluded), per request."""
    at_start: Counter[str] = Counter()

    def on_phase(phase: str) -> None:
        if phase == "measured":
            at_start.update(platform.call_counts)

    result = await run_load(options, on_phase)
    assert result.overall.status_codes == {"OK": REQUESTS}
    calls = sum(platform.call_counts.values()) - sum(at_start.values())
    return calls / REQUESTS


@pytest.mark.parametrize("rpc", sorted(TARGETS))
async def test_each_rpc_costs_the_platform_the_calls_the_bench_counts(
    rpc: str, base_options: LoadOptions, platform: SimulatedPlatform
) -> None:
    options = dataclasses.replace(
        base_options, mix={rpc: 1.0}, count=REQUESTS, concurrency=1, holders=2, applicants=8
    )
    through_gateway = await _platform_calls_per_request(options, platform)
    direct = dataclasses.replace(options, target=platform.address, service="platform", token="")
    called_directly = await _platform_calls_per_request(direct, platform)

    assert through_gateway == TARGETS[rpc].platform_calls
    assert called_directly == TARGETS[rpc].platform_calls
