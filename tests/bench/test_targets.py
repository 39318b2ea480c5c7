"""The harness's other targets on tiny loads: the bare echo service and the simulated
platform called directly (the benchmark's reference points)."""

from __future__ import annotations

from essc_gateway.loadtest import LoadOptions, run_load
from essc_gateway.loadtest.echo import echo_server
from essc_gateway.simplatform import SimulatedPlatform
from tests.conftest import POPULATION_SEED


async def test_echo_target_answers_every_request() -> None:
    server = echo_server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await run_load(
            LoadOptions(
                f"127.0.0.1:{port}",
                service="echo",
                workers=0,
                count=30,
                concurrency=3,
                progress=False,
                summary=False,
            )
        )
    finally:
        await server.stop(0)
    assert result.overall.count == 30
    assert result.overall.status_codes == {"OK": 30}
    assert set(result.by_rpc) == {"echo"}


async def test_platform_target_sends_what_the_gateway_would(
    platform: SimulatedPlatform,
) -> None:
    options = LoadOptions(
        platform.address,
        service="platform",
        mix={"verify": 1, "issue": 1, "authenticate": 1, "query": 1},
        seed=POPULATION_SEED,
        population_size=400,
        holders=3,
        workers=0,
        count=40,
        concurrency=4,
        progress=False,
        summary=False,
    )
    result = await run_load(options)
    assert result.holders == 3
    assert result.overall.count == 40
    assert result.overall.status_codes == {"OK": 40}
    assert set(result.by_rpc) == {"verify", "issue", "authenticate", "query"}
