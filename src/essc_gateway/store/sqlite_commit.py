"""Group commit on the SQLite writer connection, in a thread of its own.

A write is a function of the connection. Writes that arrive while a batch is being written
form the next batch, which runs in one hand-off to the writer thread: one transaction, one
commit and so one fsync for them all; a failing write rolls back its own statements only
(the batch is then run again with each write inside a savepoint). Each caller gets its
result once that commit is done: nothing is acknowledged that a crash could lose.

A write may be *lazy* (`durable=False`): committed and visible at once, but its batch does not
wait for the fsync (`synchronous=NORMAL` for that batch) when no durable write shares it. The
WAL is one file written in order, so the next durable commit's fsync makes it durable too;
an operating-system crash, a power cut or a failed fsync before then can lose it, never a
killed process. Only writes whose loss harms no answer given may be lazy.

Why not aiosqlite here (the readers use it): it hands every statement to its thread and back,
~0.3 ms each on this machine, measured, and a write is three to six statements. A batch pays
one hand-off, however many writes it holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from essc_gateway.store.health import WriteHealth, unavailability

R = TypeVar("R")
Work = Callable[[sqlite3.Connection], Any]
_FULL = 2  # what PRAGMA synchronous answers for FULL (EXTRA is 3)


class BatchWriter:
    """`await writer.run(work)` runs `work(connection)` in a transaction, durable on return."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        health: WriteHealth,
        synchronous: int,
    ) -> None:
        """`synchronous`: the connection's level (PRAGMA synchronous: 2 FULL, 3 EXTRA)."""
        self._db = connection
        self._thread = thread
        self.health = health
        self._queue: list[tuple[Work, asyncio.Future[Any], bool]] = []
        self._drainer: asyncio.Task[None] | None = None
        # A store opened with synchronous=NORMAL (tests, the bench's raw runs) has no fsync
        # to skip: lazy batches change nothing there.
        self._synchronous = synchronous

    @classmethod
    async def open(
        cls,
        path: Path | str,
        prepare: Callable[[sqlite3.Connection], None],
        health: WriteHealth | None = None,
    ) -> BatchWriter:
        """Connects in the writer thread and runs `prepare` (pragmas, migrations) there."""
        thread = ThreadPoolExecutor(1, thread_name_prefix="essc-sqlite-writer")

        def connect() -> tuple[sqlite3.Connection, int]:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            try:
                prepare(connection)
                row = connection.execute("PRAGMA synchronous").fetchone()
            except BaseException:
                connection.close()
                raise
            return connection, int(row[0])

        try:
            connection, level = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(connection, thread, health or WriteHealth(), level)

    async def run(self, work: Callable[[sqlite3.Connection], R], *, durable: bool = True) -> R:
        """`durable`: False for a write whose loss in an operating-system crash costs nothing
        (see the module's docstring)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future, durable))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        # A caller cancelled here cancels only its wait: the write stays queued and is done.
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            lazy = self._synchronous >= _FULL and not any(durable for _, _, durable in batch)
            try:
                outcomes = await loop.run_in_executor(
                    self._thread,
                    _write_batch,
                    self._db,
                    [work for work, _, _ in batch],
                    self._synchronous if lazy else None,
                )
            except Exception as error:  # BEGIN or COMMIT failed: none of the batch is written
                outcomes = [(False, error)] * len(batch)
            written = False
            for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
                written = written or ok
                found = None if ok else unavailability(value)
                if found is not None and found[1]:
                    self.health.report(False)
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value if found is None else found[0])
            if written:
                self.health.report(True)

    async def checkpoint_and_truncate(self) -> bool:
        """Copies the WAL into the database file and empties it (outside any transaction, on
        the writer's thread): pages erased with `secure_delete` then keep no old copy in the
        WAL. False if a reader kept it from finishing (try again)."""

        def checkpoint() -> bool:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return not busy

        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
        return await asyncio.get_running_loop().run_in_executor(self._thread, checkpoint)

    async def close(self) -> None:
        """Waits for the writes in flight, then closes the connection and the thread."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown(wait=True)


def _write_batch(
    db: sqlite3.Connection, works: list[Work], restore: int | None
) -> list[tuple[bool, Any]]:
    """`restore`: run this batch with synchronous=NORMAL, then back to this level."""
    if restore is not None:
        db.execute("PRAGMA synchronous=NORMAL")  # this batch's commit skips the fsync
    try:
        # Writes rarely fail: the batch runs bare first, and only when one fails is it rolled
        # back and run again with a savepoint around each write (two statements more per
        # write, a tenth of the writer's time when measured). The works touch nothing but
        # the database, so running one again after a rollback is safe.
        try:
            return _in_transaction(db, works, isolate=False)
        except _WriteFailed:
            return _in_transaction(db, works, isolate=True)
    finally:
        if restore is not None:
            if db.in_transaction:  # a failed ROLLBACK: the level cannot change inside one
                db.execute("ROLLBACK")
            db.execute(f"PRAGMA synchronous={restore}")


class _WriteFailed(Exception):
    """A write of a batch run without savepoints failed: the batch is rolled back."""


def _in_transaction(
    db: sqlite3.Connection, works: list[Work], *, isolate: bool
) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            if not isolate:
                try:
                    outcomes.append((True, work(db)))
                except Exception as error:
                    raise _WriteFailed from error
                continue
            db.execute("SAVEPOINT write")
            try:
                result = work(db)
            except Exception as error:
                db.execute("ROLLBACK TO write")
                db.execute("RELEASE write")
                outcomes.append((False, error))
            else:
                db.execute("RELEASE write")
                outcomes.append((True, result))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes
