"""Processes that open a fresh store at the same moment migrate it once (issue 10, defect
10: two workers both migrated and one died with `table cards already exists`)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from essc_gateway.store.migrations import MIGRATIONS

PROCESSES = 4
# Each process says it is ready, waits until all are, then opens the store: they race
# however slowly the interpreters start.
OPEN_TOGETHER = """
import asyncio, pathlib, sys, time
from essc_gateway.store.sqlite import SqliteStore

barrier, count = pathlib.Path(sys.argv[2]), int(sys.argv[3])
(barrier / str(time.monotonic_ns())).touch()
while len(list(barrier.iterdir())) < count:
    time.sleep(0.001)

async def main() -> None:
    store = await SqliteStore.open(sys.argv[1])
    await store.close()

asyncio.run(main())
"""


def _barrier(path: Path) -> Path:
    path.mkdir()
    return path


async def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    for round_ in range(3):
        database = tmp_path / f"race-{round_}.db"
        barrier = _barrier(tmp_path / f"barrier-{round_}")
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                OPEN_TOGETHER,
                str(database),
                str(barrier),
                str(PROCESSES),
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(PROCESSES)
        ]
        results = [await asyncio.wait_for(p.communicate(), timeout=60) for p in processes]
        errors = [err.decode() for (_, err) in results if err]
        assert [p.returncode for p in processes] == [0] * PROCESSES, errors
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
