"""Processes that open a fresh store at the same moment migrate it once (issue 10, defect
10: two workers both migrated and one died with `table cards already exists`)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from essc_gateway.store.migrations import MIGRATIONS

OPEN_AT_ONCE = """
import asyncio, sys, time
from essc_gateway.store.sqlite import SqliteStore

async def main() -> None:
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start together
    store = await SqliteStore.open(sys.argv[1])
    await store.close()

asyncio.run(main())
"""


async def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    for round_ in range(3):
        path = tmp_path / f"race-{round_}.db"
        start_at = time.time() + 1.5  # after every interpreter has started
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                OPEN_AT_ONCE,
                str(path),
                str(start_at),
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(4)
        ]
        results = [await asyncio.wait_for(p.communicate(), timeout=60) for p in processes]
        errors = [err.decode() for (_, err) in results if err]
        assert [p.returncode for p in processes] == [0] * 4, errors
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
