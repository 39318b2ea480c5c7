"""The bytes a store keeps on disk, read raw (what a stolen disk or a copied file gives)."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from essc_gateway.store.location import StoreLocation
from essc_gateway.store.postgres_privacy import HOLDER_TABLES


async def raw_bytes(database: StoreLocation) -> bytes:
    """SQLite: the database file and its WAL. PostgreSQL: the files of the tables an erasure
    deletes from, and of their indexes, after a checkpoint."""
    if isinstance(database, Path):
        wal = database.with_name(database.name + "-wal")
        return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    connection = await asyncpg.connect(database.dsn)
    try:
        await connection.execute("CHECKPOINT")
        data = Path(await connection.fetchval("SHOW data_directory"))
        relations = await connection.fetch(
            "SELECT pg_relation_filepath(c.oid) AS path FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname IN "
            "(SELECT unnest($1::text[]) UNION SELECT i.indexrelid::regclass::text FROM "
            "pg_index i WHERE i.indrelid::regclass::text = ANY($1::text[]))",
            list(HOLDER_TABLES),
        )
    finally:
        await connection.close()
    return _read_files(data, [str(row["path"]) for row in relations])


def _read_files(data: Path, relations: list[str]) -> bytes:
    """Every segment of each relation (main fork, further gigabytes, free space maps)."""
    return b"".join(
        segment.read_bytes()
        for relation in relations
        for segment in sorted(data.glob(relation + "*"))
    )
