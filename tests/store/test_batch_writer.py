"""Group commit: writes queued together share one transaction, and a failing write takes
only its own statements with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from essc_gateway.store.sqlite_commit import BatchWriter


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY)")


def _insert(name: str, *, then_fail: bool = False) -> Callable[[sqlite3.Connection], int]:
    def work(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO notes (name) VALUES (?)", (name,))
        if then_fail:
            raise ValueError("this write fails after its insert")
        return db.total_changes

    return work


def _names(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM notes ORDER BY name")]


async def test_a_failing_write_rolls_back_only_its_own_statements(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"
    writer = await BatchWriter.open(path, _prepare)
    try:
        results = await asyncio.gather(
            writer.run(_insert("a")),
            writer.run(_insert("b", then_fail=True)),
            writer.run(_insert("c")),
            return_exceptions=True,
        )
    finally:
        await writer.close()
    assert isinstance(results[1], ValueError)
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert _names(path) == ["a", "c"]


async def test_a_constraint_violation_fails_its_write_alone(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"
    writer = await BatchWriter.open(path, _prepare)
    try:
        await writer.run(_insert("a"))
        results = await asyncio.gather(
            writer.run(_insert("b")),
            writer.run(_insert("a")),
            writer.run(_insert("c")),
            return_exceptions=True,
        )
    finally:
        await writer.close()
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert _names(path) == ["a", "b", "c"]


async def test_every_write_of_a_batch_is_committed_when_none_fails(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"
    writer = await BatchWriter.open(path, _prepare)
    try:
        await asyncio.gather(*(writer.run(_insert(f"n{i:03}")) for i in range(50)))
    finally:
        await writer.close()
    assert _names(path) == [f"n{i:03}" for i in range(50)]
