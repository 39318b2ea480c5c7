"""Group commit acknowledges a write only once it is committed: a process killed mid-stream
(SIGKILL, no clean shutdown) loses none of the writes it had acknowledged, lazy ones (an
Issue's ISSUED completion, see `Store.complete_issue`) included: only a crash of the machine
or the database server can take those back, and then the durable claim remains for the
reconciler."""

from __future__ import annotations

import asyncio
import signal
import sys

from essc_gateway.store.location import PostgresDatabase, StoreLocation
from tests.sql import fetch

WRITER = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from essc_gateway.bench.store_rate import _card
from essc_gateway.store.location import parse_store_location
from essc_gateway.store.opening import open_store

async def main(location):
    store = await open_store(parse_store_location(location), "FULL")
    async def writer(n):
        i = 0
        while True:
            key, now = f"{n}-{i}", datetime.now(UTC)
            claim = await store.claim_issue(
                "bank", key, "fp", now, now + timedelta(seconds=30), None
            )
            await store.complete_issue(
                "bank", key, "ISSUED", key, _card(key, key, now), now, claim.token, lazy=True
            )
            print(key, flush=True)  # acknowledged: committed from here on
            i += 1
    await asyncio.gather(*(writer(n) for n in range(32)))

asyncio.run(main(sys.argv[1]))
"""


async def test_no_acknowledged_issuance_is_lost_when_the_process_is_killed(
    location: StoreLocation,
) -> None:
    where = location.dsn if isinstance(location, PostgresDatabase) else str(location)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, where, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    acknowledged: list[str] = []
    while len(acknowledged) < 600:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "the writer ended early"
        acknowledged.append(line.decode().strip())
    process.send_signal(signal.SIGKILL)
    # Lines printed before the kill but not read yet were acknowledged too.
    acknowledged += (await process.stdout.read()).decode().split()
    await process.wait()
    cards = {row["essc_id"] for row in await fetch(location, "SELECT essc_id FROM cards")}
    completed = {
        row["idempotency_key"]
        for row in await fetch(
            location, "SELECT idempotency_key FROM issue_attempts WHERE state = 'COMPLETED'"
        )
    }
    assert set(acknowledged) <= cards
    assert set(acknowledged) <= completed
