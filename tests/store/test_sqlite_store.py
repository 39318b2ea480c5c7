"""The SQLite adapter of the Store port, on a real file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from essc_gateway.store import IssueAttempt
from essc_gateway.store.migrations import MIGRATIONS
from essc_gateway.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "store.db")
    yield opened
    await opened.close()


LEASE = timedelta(seconds=30)


async def claim(store: SqliteStore, key: str) -> IssueAttempt | None:
    won = await store.claim_issue("bank-a", key, "fp", NOW, NOW + LEASE, b"draft")
    return won.existing


async def test_reopening_keeps_data_and_applies_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = await SqliteStore.open(path)
    await claim(first, "key-1")
    await first.close()
    second = await SqliteStore.open(path)
    try:
        assert await claim(second, "key-1") is not None
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_writes_commit_with_synchronous_full(store: SqliteStore) -> None:
    # synchronous resets on every new connection: the writer's own must be FULL (2).
    level = await store._write(lambda db: db.execute("PRAGMA synchronous").fetchone()[0])
    assert level == 2


async def test_a_read_sees_every_write_committed_before_it_amid_other_reads(
    store: SqliteStore,
) -> None:
    # Reads share one connection. A read whose statement stays open across hand-offs to its
    # thread (execute, then fetch, then close) holds that connection's snapshot, and a read
    # of another task in between sees the store as it was: a key job then met a holder's old
    # key beside its cards already re-sealed (a DecryptionError in the bench). Each read is
    # one hand-off, so each sees what was committed before it began.
    await claim(store, "busy")
    stop = False

    async def reading() -> None:
        while not stop:
            await store.get_issue_attempt("bank-a", "busy")

    readers = [asyncio.create_task(reading()) for _ in range(8)]
    try:
        for i in range(200):
            await claim(store, f"key-{i}")
            assert await store.get_issue_attempt("bank-a", f"key-{i}") is not None, i
    finally:
        stop = True
        await asyncio.gather(*readers)
