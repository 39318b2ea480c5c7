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


def _synchronous_in_transaction(db: sqlite3.Connection) -> int:
    """The synchronous level the batch's commit runs with (2 FULL: waits for the fsync)."""
    return int(db.execute("PRAGMA synchronous").fetchone()[0])


async def test_a_batch_of_lazy_writes_commits_without_waiting_for_the_fsync(
    tmp_path: Path,
) -> None:
    path = tmp_path / "batch.db"
    writer = await BatchWriter.open(path, _prepare)
    try:
        lazy = await writer.run(_synchronous_in_transaction, durable=False)
        after = await writer.run(_synchronous_in_transaction)
    finally:
        await writer.close()
    assert (lazy, after) == (1, 2)  # NORMAL for the lazy batch, FULL again for the next


async def test_one_durable_write_makes_its_whole_batch_wait_for_the_fsync(
    tmp_path: Path,
) -> None:
    path = tmp_path / "batch.db"
    writer = await BatchWriter.open(path, _prepare)
    try:
        # Queued in the same turn of the loop: the three form one batch.
        levels = await asyncio.gather(
            writer.run(_synchronous_in_transaction, durable=False),
            writer.run(_insert("durable")),
            writer.run(_synchronous_in_transaction, durable=False),
        )
    finally:
        await writer.close()
    assert (levels[0], levels[2]) == (2, 2)


async def test_a_store_opened_without_fsync_waits_stays_so(tmp_path: Path) -> None:
    def prepare(db: sqlite3.Connection) -> None:
        _prepare(db)
        db.execute("PRAGMA synchronous=NORMAL")

    writer = await BatchWriter.open(tmp_path / "batch.db", prepare)
    try:
        levels = [
            await writer.run(_synchronous_in_transaction, durable=False),
            await writer.run(_synchronous_in_transaction),
        ]
    finally:
        await writer.close()
    assert levels == [1, 1]
