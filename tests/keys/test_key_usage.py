"""Key usage is recorded (K5): each interval, per bank, how many times its keys were
unwrapped, as a USED key event of the evidence log; an idle interval writes nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from essc_gateway.evidence.entries import EntryKind
from essc_gateway.simplatform import SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import make_config, running_gateway


async def test_unwraps_are_counted_per_bank_and_interval(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> None:
    config = make_config(database, key_usage_interval=timedelta(seconds=0.05))
    async with running_gateway(platform, clock, config) as gw:
        store = gw.gateway._store
        assert store is not None
        refs = ["bank-a/DATA/v1", "bank-b/DATA/v1"]
        loop = asyncio.get_running_loop()
        until = loop.time() + 10
        while len(used := await store.log_entries_for(EntryKind.KEY_EVENT, refs)) < 4:
            assert loop.time() < until, "no usage recorded"
            await asyncio.sleep(0.05)
        events = [json.loads(e.body) for e in used if json.loads(e.body)["event"] == "USED"]
        assert sorted(e["bank_id"] for e in events) == ["bank-a", "bank-b"]
        assert all("1 bank keys by the root" in e["detail"] for e in events)
        await asyncio.sleep(0.3)  # idle: nothing more
        again = await store.log_entries_for(EntryKind.KEY_EVENT, refs)
        assert len([e for e in again if json.loads(e.body)["event"] == "USED"]) == 2
