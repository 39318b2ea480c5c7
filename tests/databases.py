"""Real databases for tests: a SQLite file in the test's directory, or a schema of its own in
a PostgreSQL database made fresh for this test run (dropped at its end).

`ESSC_TEST_POSTGRES` names the server (default: the machine's local PostgreSQL, trust auth);
a run without a reachable server fails, it never skips."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from essc_gateway.store.location import PostgresDatabase, StoreLocation

ADMIN_DSN = os.environ.get("ESSC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _execute(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_run_database() -> Iterator[str]:
    """A database of this test run (its DSN); each test takes a schema of its own in it."""
    name = f"essc_test_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_execute(ADMIN_DSN, f'CREATE DATABASE "{name}"'))
    yield _with_database(ADMIN_DSN, name)
    asyncio.run(_execute(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def new_postgres_schema(run_database: str) -> PostgresDatabase:
    """A fresh, empty schema; the DSN's search_path points at it."""
    schema = f"t_{secrets.token_hex(6)}"
    asyncio.run(_execute(run_database, f"CREATE SCHEMA {schema}"))
    return PostgresDatabase(f"{run_database}?search_path={schema}")


@pytest.fixture
def postgres_location(postgres_run_database: str) -> PostgresDatabase:
    return new_postgres_schema(postgres_run_database)


def location_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreLocation:
    if backend == "sqlite":
        return tmp_path / "store.db"
    run_database: str = request.getfixturevalue("postgres_run_database")
    return new_postgres_schema(run_database)
