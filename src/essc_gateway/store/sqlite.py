"""The embedded default store: SQLite through aiosqlite, in WAL mode.

One writer connection behind an asyncio lock (SQLite has one writer anyway, and coroutines
sharing a connection would otherwise interleave inside each other's transactions) and one
reader connection, which in WAL mode sees only committed data.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from essc_gateway.store.base import (
    CardRecord,
    IssueAttempt,
    IssueAttemptState,
    LockoutState,
    StoreError,
)
from essc_gateway.store.migrations import MIGRATIONS

Synchronous = Literal["FULL", "NORMAL"]

_CARD_COLUMNS = (
    "essc_id, bank_id, holder_token, name_sealed, id_number_sealed, phone_sealed, "
    "card_number_sealed, status, issued_at, consent_version, consent_accepted_at, "
    "consent_channel, guardian_sealed, guardian_relation, terminated_at"
)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _card(row: sqlite3.Row) -> CardRecord:
    issued_at = _dt(row["issued_at"])
    accepted_at = _dt(row["consent_accepted_at"])
    assert issued_at is not None
    assert accepted_at is not None
    return CardRecord(
        essc_id=row["essc_id"],
        bank_id=row["bank_id"],
        holder_token=row["holder_token"],
        name_sealed=row["name_sealed"],
        id_number_sealed=row["id_number_sealed"],
        phone_sealed=row["phone_sealed"],
        card_number_sealed=row["card_number_sealed"],
        status=row["status"],
        issued_at=issued_at,
        consent_version=row["consent_version"],
        consent_accepted_at=accepted_at,
        consent_channel=row["consent_channel"],
        guardian_sealed=row["guardian_sealed"],
        guardian_relation=row["guardian_relation"],
        terminated_at=_dt(row["terminated_at"]),
    )


def _attempt(row: sqlite3.Row) -> IssueAttempt:
    created_at = _dt(row["created_at"])
    assert created_at is not None
    return IssueAttempt(
        bank_id=row["bank_id"],
        idempotency_key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        state=IssueAttemptState(row["state"]),
        created_at=created_at,
        outcome=row["outcome"],
        essc_id=row["essc_id"],
    )


class SqliteStore:
    """`Store` on a SQLite file. Build it with `await SqliteStore.open(path)`."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str, synchronous: Synchronous = "FULL") -> SqliteStore:
        """Opens (creating and migrating if needed) the database at `path`."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = await cls._connect(path, synchronous)
        try:
            await cls._migrate(writer)
            reader = await cls._connect(path, synchronous)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    @staticmethod
    async def _connect(path: Path | str, synchronous: Synchronous) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = sqlite3.Row
        # journal_mode persists in the file, but synchronous resets on every connection.
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute(f"PRAGMA synchronous={synchronous}")
        await connection.execute("PRAGMA foreign_keys=ON")
        await connection.execute("PRAGMA busy_timeout=5000")
        return connection

    @staticmethod
    async def _migrate(connection: aiosqlite.Connection) -> None:
        async with connection.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        applied = int(row[0]) if row else 0
        if applied > len(MIGRATIONS):
            raise StoreError("database schema is newer than this gateway")
        for version, script in enumerate(MIGRATIONS[applied:], start=applied + 1):
            await connection.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
            )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def _fetch_one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        async with self._reader.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
        return row

    async def claim_issue(
        self, bank_id: str, idempotency_key: str, fingerprint: str, now: datetime
    ) -> IssueAttempt | None:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO issue_attempts (bank_id, idempotency_key, fingerprint, state, "
                "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (bank_id, idempotency_key, fingerprint, IssueAttemptState.PENDING, _ts(now)),
            )
            if cursor.rowcount == 1:
                return None
            async with db.execute(
                "SELECT * FROM issue_attempts WHERE bank_id = ? AND idempotency_key = ?",
                (bank_id, idempotency_key),
            ) as existing:
                row = await existing.fetchone()
        if row is None:
            raise StoreError("claim_issue: conflicting attempt vanished")
        return _attempt(row)

    async def complete_issue(
        self,
        bank_id: str,
        idempotency_key: str,
        outcome: str,
        essc_id: str,
        new_card: CardRecord | None,
    ) -> None:
        async with self._transaction() as db:
            if new_card is not None:
                await db.execute(
                    f"INSERT INTO cards ({_CARD_COLUMNS}) "  # noqa: S608 - constant columns
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new_card.essc_id,
                        new_card.bank_id,
                        new_card.holder_token,
                        new_card.name_sealed,
                        new_card.id_number_sealed,
                        new_card.phone_sealed,
                        new_card.card_number_sealed,
                        new_card.status,
                        _ts(new_card.issued_at),
                        new_card.consent_version,
                        _ts(new_card.consent_accepted_at),
                        new_card.consent_channel,
                        new_card.guardian_sealed,
                        new_card.guardian_relation,
                        _ts(new_card.terminated_at),
                    ),
                )
            cursor = await db.execute(
                "UPDATE issue_attempts SET state = ?, outcome = ?, essc_id = ? "
                "WHERE bank_id = ? AND idempotency_key = ?",
                (IssueAttemptState.COMPLETED, outcome, essc_id, bank_id, idempotency_key),
            )
            if cursor.rowcount != 1:
                raise StoreError("complete_issue: no pending attempt for this key")

    async def release_issue(self, bank_id: str, idempotency_key: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM issue_attempts WHERE bank_id = ? AND idempotency_key = ? "
                "AND state = ?",
                (bank_id, idempotency_key, IssueAttemptState.PENDING),
            )

    async def active_card_for_holder(self, holder_token: str) -> CardRecord | None:
        row = await self._fetch_one(
            f"SELECT {_CARD_COLUMNS} FROM cards "  # noqa: S608 - constant columns
            "WHERE holder_token = ? AND status != 'TERMINATED'",
            (holder_token,),
        )
        return None if row is None else _card(row)

    async def get_card(self, essc_id: str) -> CardRecord | None:
        row = await self._fetch_one(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE essc_id = ?",  # noqa: S608
            (essc_id,),
        )
        return None if row is None else _card(row)

    async def set_card_status(
        self, essc_id: str, status: str, terminated_at: datetime | None = None
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE cards SET status = ?, terminated_at = COALESCE(?, terminated_at) "
                "WHERE essc_id = ?",
                (status, _ts(terminated_at), essc_id),
            )

    async def lockout(self, holder_token: str) -> LockoutState:
        row = await self._fetch_one(
            "SELECT consecutive_failures, locked_until FROM factor_failures WHERE holder_token = ?",
            (holder_token,),
        )
        if row is None:
            return LockoutState(consecutive_failures=0, locked_until=None)
        return LockoutState(row["consecutive_failures"], _dt(row["locked_until"]))

    async def record_factor_failure(
        self, holder_token: str, now: datetime, max_failures: int, lock_for: timedelta
    ) -> LockoutState:
        async with self._transaction() as db:
            async with db.execute(
                "INSERT INTO factor_failures (holder_token, consecutive_failures) VALUES (?, 1) "
                "ON CONFLICT (holder_token) DO UPDATE "
                "SET consecutive_failures = consecutive_failures + 1 "
                "RETURNING consecutive_failures, locked_until",
                (holder_token,),
            ) as cursor:
                row = await cursor.fetchone()
            assert row is not None
            failures, locked_until = int(row[0]), _dt(row[1])
            if failures >= max_failures:
                locked_until = now + lock_for
                # The count restarts, so the holder gets a fresh set of tries after the lock.
                await db.execute(
                    "UPDATE factor_failures SET consecutive_failures = 0, locked_until = ? "
                    "WHERE holder_token = ?",
                    (_ts(locked_until), holder_token),
                )
        return LockoutState(consecutive_failures=failures, locked_until=locked_until)

    async def clear_factor_failures(self, holder_token: str) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM factor_failures WHERE holder_token = ?", (holder_token,))

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
