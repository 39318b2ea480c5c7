"""A platform channel replaced between two attempts of one call (the certificate watcher's
reload): the retry goes over the new channel, even though the old one is already closed."""

from __future__ import annotations

import grpc

from essc_gateway.bench.processes import free_port
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.upstream.grpc_platform import GrpcPlatform
from tests.upstream.test_retrying import Harness


async def test_a_retry_after_the_channel_was_replaced_uses_the_new_channel(
    population: Population,
) -> None:
    platform = SimulatedPlatform(population)
    await platform.start()
    # The first channel leads nowhere: its attempt fails before anything is sent.
    nowhere = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    harness = Harness(attempt_timeout=2.0, backoff_base=0.01)
    client = GrpcPlatform(nowhere, harness.caller)
    swaps: list[grpc.aio.Channel] = []

    async def swap_during_backoff() -> None:
        if not swaps:  # as PlatformTlsWatch does, the old channel closed at once
            old = client.use_channel(grpc.aio.insecure_channel(platform.address))
            swaps.append(old)
            await old.close()

    harness.before_sleep = swap_during_backoff
    person = population.people[0]
    try:
        result = await client.check_real_card(person.id_number, person.card_number)
        assert swaps == [nowhere]
        assert result.passed
    finally:
        await client.close()
        await platform.stop(0)
