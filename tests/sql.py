"""Looking into the store from a test, on either adapter: SQL written with `?` placeholders,
rows as dicts with SQLite's shapes (times as UTC ISO text, booleans as 0/1), so that one
assertion holds for both."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from essc_gateway.store.location import PostgresDatabase, StoreLocation


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


async def fetch(database: StoreLocation, sql: str, *params: Any) -> list[dict[str, Any]]:
    if isinstance(database, Path):
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, params).fetchall()]
    connection = await asyncpg.connect(database.dsn)
    try:
        rows = await connection.fetch(_numbered(sql), *params)
    finally:
        await connection.close()
    return [{key: _plain(value) for key, value in row.items()} for row in rows]


async def execute(database: StoreLocation, sql: str, *params: Any) -> None:
    if isinstance(database, Path):
        with sqlite3.connect(database) as db:
            db.execute(sql, params)
        return
    connection = await asyncpg.connect(database.dsn)
    try:
        await connection.execute(_numbered(sql), *params)
    finally:
        await connection.close()


async def count(database: StoreLocation, table: str, where: str = "TRUE") -> int:
    rows = await fetch(database, f"SELECT COUNT(*) AS n FROM {table} WHERE {where}")  # noqa: S608
    return int(rows[0]["n"])


async def refuse_inserts(database: StoreLocation, table: str) -> None:
    """Every insert into `table` fails from now on (as a full disk would fail it)."""
    if isinstance(database, Path):
        await execute(
            database,
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        return
    await execute(
        database,
        "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
    )
    await execute(
        database,
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION refuse_insert()",
    )


async def allow_inserts(database: StoreLocation, table: str) -> None:
    on = "" if isinstance(database, Path) else f" ON {table}"
    await execute(database, f"DROP TRIGGER refuse_{table}{on}")


async def stored_bytes(database: StoreLocation) -> bytes:
    """Everything the store keeps, as bytes to search: the SQLite files (WAL included), or
    every row of every table of the PostgreSQL schema as text."""
    if isinstance(database, Path):
        return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert isinstance(database, PostgresDatabase)
    tables = await fetch(
        database,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    texts = []
    for table in tables:
        rows = await fetch(database, f"SELECT t::text AS row FROM {table['table_name']} t")  # noqa: S608
        texts += [row["row"] for row in rows]
    return "\n".join(texts).encode()


async def liability_records(database: StoreLocation) -> list[dict[str, Any]]:
    """Every liability record as its evidence log entry holds it (the record itself; its
    row only indexes it), in the order they were appended."""
    rows = await fetch(
        database,
        "SELECT evidence_log.body AS body FROM liability_records JOIN evidence_log "
        "ON evidence_log.idx = liability_records.log_index ORDER BY liability_records.seq",
    )
    return [json.loads(bytes(row["body"])) for row in rows]


@asynccontextmanager
async def writes_held(database: StoreLocation, table: str) -> AsyncIterator[None]:
    """Another session holds the store's write lock (SQLite: the whole file) or `table`'s
    (PostgreSQL: reads go on) until the block ends: a write there waits meanwhile."""
    if isinstance(database, Path):
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    connection = await asyncpg.connect(database.dsn)
    try:
        async with connection.transaction():
            await connection.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()
