"""The harness's other targets on tiny loads: the bare echo service and the simulated
platform called directly, and the fan-out floor (the benchmark's reference points)."""

from __future__ import annotations

import grpc
from google.protobuf.wrappers_pb2 import BytesValue

from essc_gateway.loadtest import LoadOptions, run_load
from essc_gateway.loadtest.echo import ECHO_METHOD, echo_server, echo_stub
from essc_gateway.simplatform import SimulatedPlatform
from tests.conftest import POPULATION_SEED


def _echo_load(port: int, count: int) -> LoadOptions:
    return LoadOptions(
        f"127.0.0.1:{port}",
        service="echo",
        workers=0,
        count=count,
        concurrency=3,
        progress=False,
        summary=False,
    )


async def test_echo_target_answers_every_request() -> None:
    server = echo_server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await run_load(_echo_load(port, 30))
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


async def test_the_fan_out_floor_makes_its_upstream_calls_per_request() -> None:
    upstream_calls = 0

    async def counting_echo(
        request: BytesValue, context: grpc.aio.ServicerContext[BytesValue, BytesValue]
    ) -> BytesValue:
        nonlocal upstream_calls
        upstream_calls += 1
        return request

    upstream = grpc.aio.server()
    upstream.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                ECHO_METHOD.split("/")[1],
                {
                    ECHO_METHOD.split("/")[2]: grpc.unary_unary_rpc_method_handler(
                        counting_echo,
                        request_deserializer=BytesValue.FromString,
                        response_serializer=BytesValue.SerializeToString,
                    )
                },
            ),
        )
    )
    upstream_port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{upstream_port}")
    floor = echo_server(echo_stub(channel), fan_out=3)
    port = floor.add_insecure_port("127.0.0.1:0")
    await floor.start()
    try:
        result = await run_load(_echo_load(port, 20))
    finally:
        await floor.stop(0)
        await channel.close()
        await upstream.stop(0)
    assert result.overall.status_codes == {"OK": 20}
    assert upstream_calls == 3 * 20
