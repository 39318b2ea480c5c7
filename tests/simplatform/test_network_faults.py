"""Connection faults at the network front: the platform is not reached at all."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import grpc
import pytest

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.simplatform import Person, Population, SimulatedPlatform
from essc_gateway.testing import FakeClock
from tests.polling import eventually
from tests.simplatform.helpers import (
    DETAILS_KEY,
    FRESH_CHANNEL,
    Stubs,
    failure,
    name_check,
    scenario,
)

SECOND = timedelta(seconds=1)
REFUSE = {"connection": {"mode": "CONNECTION_FAILURE_MODE_REFUSE"}}
RESET = {"connection": {"mode": "CONNECTION_FAILURE_MODE_RESET"}}


async def tcp_state(port: int) -> str:
    """ "refused", "reset" (accepted, then RST) or "open" for a raw connection to the port."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return "refused"
    try:
        # HTTP/2 preface: the gRPC server answers with its SETTINGS frame.
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        await writer.drain()
        data = await reader.read(9)
    except ConnectionResetError:
        return "reset"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return "open" if data else "reset"


def assert_not_reached(error_keys: tuple[str, ...], code: grpc.StatusCode) -> None:
    assert code == grpc.StatusCode.UNAVAILABLE
    assert DETAILS_KEY not in error_keys
    assert not error_keys  # no server metadata at all


async def test_refuse_closes_the_port_and_resets_open_connections_while_control_works(
    platform: SimulatedPlatform,
    data: Stubs,
    control: pb_grpc.ControlServiceAsyncStub,
    clock: FakeClock,
    person: Person,
) -> None:
    await data.identity.CheckRealName(name_check(person))  # one HTTP/2 connection is open
    port = platform.port
    await platform.apply_scenario(scenario({"startAfter": "10s", "duration": "30s", **REFUSE}))
    clock.advance(10 * SECOND)
    await platform.sync_network()

    error = await failure(data.identity.CheckRealName(name_check(person)))
    assert_not_reached(error.trailing_keys, error.code)
    assert await tcp_state(port) == "refused"
    async with grpc.aio.insecure_channel(platform.address, options=FRESH_CHANNEL) as fresh:
        error = await failure(pb_grpc.IdentityServiceStub(fresh).CheckRealName(name_check(person)))
        assert_not_reached(error.trailing_keys, error.code)
    status = await control.GetFaultStatus(pb.GetFaultStatusRequest())
    assert status.active_rules[0].remaining.ToTimedelta() == 30 * SECOND
    stats = await control.GetCallCounts(pb.GetCallCountsRequest())
    assert stats.connections_reset >= 1

    clock.advance(30 * SECOND)
    await platform.sync_network()
    assert platform.port == port
    assert await tcp_state(port) == "open"
    # The old channel reconnects to the same address by itself.
    reply = await data.identity.CheckRealName(name_check(person), wait_for_ready=True, timeout=10)
    assert reply.result.passed


async def test_reset_accepts_then_resets_before_forwarding_anything(
    platform: SimulatedPlatform, data: Stubs, person: Person
) -> None:
    await data.identity.CheckRealName(name_check(person))
    before = platform.network_stats.reset
    await platform.apply_scenario(scenario(RESET))
    assert platform.network_stats.reset == before + 1  # the open connection went first
    error = await failure(data.identity.CheckRealName(name_check(person)))
    assert_not_reached(error.trailing_keys, error.code)
    assert await tcp_state(platform.port) == "reset"
    await platform.clear_faults()
    reply = await data.identity.CheckRealName(name_check(person), wait_for_ready=True, timeout=10)
    assert reply.result.passed


async def test_the_proxy_follows_a_fake_clock_by_itself(
    platform: SimulatedPlatform, clock: FakeClock
) -> None:
    # No sync_network() here: the background poll notices the timeline moved.
    await platform.apply_scenario(scenario({"startAfter": "5s", "duration": "5s", **REFUSE}))
    assert await tcp_state(platform.port) == "open"
    clock.advance(5 * SECOND)

    async def refused() -> bool:
        return await tcp_state(platform.port) == "refused"

    async def open_again() -> bool:
        return await tcp_state(platform.port) == "open"

    await eventually(refused)
    clock.advance(5 * SECOND)
    await eventually(open_again)


async def test_a_connection_fault_set_over_the_control_rpc_reaches_the_proxy(
    platform: SimulatedPlatform, control: pb_grpc.ControlServiceAsyncStub
) -> None:
    request = pb.SetFaultScenarioRequest(
        scenario=pb.FaultScenario(
            rules=[
                pb.FaultRule(connection=pb.ConnectionFault(mode=pb.CONNECTION_FAILURE_MODE_REFUSE))
            ]
        )
    )
    await control.SetFaultScenario(request)

    async def refused() -> bool:
        return await tcp_state(platform.port) == "refused"

    await eventually(refused)
    await control.ClearFaults(pb.ClearFaultsRequest())

    async def open_again() -> bool:
        return await tcp_state(platform.port) == "open"

    await eventually(open_again)


async def test_a_platform_started_under_refuse_listens_when_it_ends(
    population: Population, person: Person
) -> None:
    clock = FakeClock()
    async with SimulatedPlatform(population, clock=clock) as platform:
        await platform.apply_scenario(scenario({"duration": "1s", **REFUSE}))
        assert await tcp_state(platform.port) == "refused"
        clock.advance(SECOND)
        await platform.sync_network()
        async with grpc.aio.insecure_channel(platform.address, options=FRESH_CHANNEL) as channel:
            reply = await pb_grpc.IdentityServiceStub(channel).CheckRealName(name_check(person))
            assert reply.result.passed


async def test_without_a_network_front_address_is_the_grpc_server(
    population: Population, person: Person
) -> None:
    async with SimulatedPlatform(population, clock=FakeClock(), network=False) as platform:
        assert platform.address == platform.control_address
        await platform.apply_scenario(scenario(REFUSE))  # accepted, has no effect
        async with grpc.aio.insecure_channel(platform.address) as channel:
            reply = await pb_grpc.IdentityServiceStub(channel).CheckRealName(name_check(person))
            assert reply.result.passed


async def test_a_stopped_platform_refuses_connections(population: Population) -> None:
    platform = SimulatedPlatform(population, clock=FakeClock())
    await platform.start()
    ports = (platform.port, platform.control_port)
    await platform.stop(0)
    for port in ports:
        assert await tcp_state(port) == "refused"


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - a test bind
async def test_the_network_front_binds_the_given_host(population: Population, host: str) -> None:
    platform = SimulatedPlatform(population, clock=FakeClock())
    await platform.start(host, 0)
    try:
        assert platform.address.startswith("127.0.0.1:")
        assert await tcp_state(platform.port) == "open"
        assert await tcp_state(platform.control_port) == "open"
    finally:
        await platform.stop(0)
