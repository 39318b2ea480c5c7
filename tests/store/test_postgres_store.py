"""What the PostgreSQL adapter alone must do: a connection lost in the middle of a write, or
a database that stops answering, is the store unavailable (never a driver error, never a
hang), health says so, and the store recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from essc_gateway.store.base import StoreUnavailable
from essc_gateway.store.location import PostgresDatabase
from essc_gateway.store.postgres import PostgresStore
from tests.polling import eventually
from tests.store.test_ledger_tables import record

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(postgres_location: PostgresDatabase) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(postgres_location)
    yield opened
    await opened.close()


async def test_a_connection_killed_mid_write_is_unavailable_and_the_store_recovers(
    store: PostgresStore, postgres_location: PostgresDatabase
) -> None:
    admin = await asyncpg.connect(postgres_location.dsn)
    try:
        # Hold the chain's head: the store's append waits inside its transaction.
        holding = admin.transaction()
        await holding.start()
        await admin.execute("SELECT 1 FROM ledger_head WHERE id = 1 FOR UPDATE")
        append = asyncio.ensure_future(store.append_liability(record(1)))

        async def waiting_on_the_lock() -> bool:
            rows = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'essc-gateway' "
                "AND wait_event_type = 'Lock' AND datname = current_database()"
            )
            return len(rows) == 1

        await eventually(waiting_on_the_lock)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'essc-gateway' AND wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        with pytest.raises(StoreUnavailable):
            await append
        assert not store.health.writable
        await holding.rollback()
    finally:
        await admin.close()
    await store.probe_write()  # a new connection from the pool: writes again
    assert store.health.writable
    appended = await store.append_liability(record(2))
    assert appended.seq == 1  # the killed append left nothing behind
