"""Which writes wait for the fsync (see `Store`): a factor check's reservation, success and
release, a heartbeat and an Issue's completion are committed lazily; an Issue's claim (its
one durable commit, before IssueCard leaves), an in-doubt mark and a factor failure are
durable before the answer. Lazy writes are committed all the same: visible to every reader
at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from essc_gateway.bench.store_rate import _card
from essc_gateway.store.cluster import ReplicaInfo
from essc_gateway.store.location import PostgresDatabase
from essc_gateway.store.opening import GatewayStore
from essc_gateway.store.postgres import PostgresStore
from essc_gateway.store.postgres_batches import Completion, NewClaim, claim_many, complete_many
from essc_gateway.store.sqlite import SqliteStore

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
STALE = timedelta(minutes=1)


def _record_durability(store: GatewayStore) -> list[bool]:
    """Wraps the store's own write method (the real one runs) to note each write's flag."""
    flags: list[bool] = []
    write: Callable[..., Awaitable[Any]] = store._write  # type: ignore[union-attr]

    async def noting(work: Any, **options: Any) -> Any:
        flags.append(options.get("durable", True))
        return await write(work, **options)

    store._write = noting  # type: ignore[union-attr,method-assign]
    return flags


async def test_a_factor_check_waits_for_the_fsync_only_when_it_fails(
    any_store: GatewayStore,
) -> None:
    flags = _record_durability(any_store)
    for verdict in (True, None, False):
        assert (await any_store.begin_factor_attempt("holder", NOW, 5, STALE)).admitted
        await any_store.end_factor_attempt("holder", verdict, NOW, 5, timedelta(minutes=30))
    assert flags == [False, False, False, False, False, True]


async def test_a_lazy_reservation_is_seen_by_the_next_check_at_once(
    any_store: GatewayStore,
) -> None:
    # Committed, only not waited to be durable: the lockout stays exact.
    assert (await any_store.begin_factor_attempt("holder", NOW, 2, STALE)).admitted
    assert (await any_store.begin_factor_attempt("holder", NOW, 2, STALE)).admitted
    assert not (await any_store.begin_factor_attempt("holder", NOW, 2, STALE)).admitted


async def test_postgres_lazy_writes_skip_the_wal_flush_and_durable_ones_wait(
    postgres_location: PostgresDatabase,
) -> None:
    store = await PostgresStore.open(postgres_location)

    async def setting(db: Any) -> str:
        return str(await db.fetchval("SHOW synchronous_commit"))

    try:
        lazy = await store._write(setting, durable=False)
        durable = await store._write(setting)
    finally:
        await store.close()
    assert (lazy, durable) == ("off", "on")


async def test_postgres_claims_write_the_wal_and_completions_leave_it_to_the_wal_writer(
    postgres_location: PostgresDatabase,
) -> None:
    # Counted by the server: each statement commits on its own, as the store runs them. A
    # durable commit writes the WAL itself; a lazy one leaves it to the WAL writer (a few
    # rounds a second), not waited for. A claim answered IN_DOUBT later must survive a
    # database crash (see Store.claim_issue); a completion need not (Store.complete_issue).
    store = await PostgresStore.open(postgres_location)  # creates the tables
    await store.close()
    connection = await asyncpg.connect(postgres_location.dsn)
    try:
        keys = [f"key-{i}" for i in range(50)]
        claims = [NewClaim("bank", k, "fp", NOW, NOW + STALE, b"draft", f"t-{k}") for k in keys]
        start = await _wal_writes(connection)
        for claim in claims:
            assert await claim_many(connection, [claim]) == [True]
        claimed = await _wal_writes(connection)
        for k in keys:
            card = _card(f"essc-{k}", k, NOW)
            completion = Completion("bank", k, "ISSUED", f"essc-{k}", card, NOW, f"t-{k}")
            assert await complete_many(connection, [completion]) == [True]
        completed = await _wal_writes(connection)
    finally:
        await connection.close()
    assert claimed - start >= len(keys)  # each durable claim wrote the WAL
    assert completed - claimed < len(keys) // 2


async def _wal_writes(connection: asyncpg.Connection) -> int:
    """The server's count of WAL writes, this session's own flushed into it first."""
    await connection.execute("SELECT pg_stat_force_next_flush()")
    return int(await connection.fetchval("SELECT wal_write FROM pg_stat_wal"))


async def test_sqlite_commits_an_issue_claim_and_in_doubt_mark_durably_its_completion_lazily(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "store.db")
    flags = _record_durability(store)
    try:
        claim = await store.claim_issue("bank", "key-1", "fp", NOW, NOW + STALE, b"draft")
        await store.mark_issue_in_doubt("bank", "key-1", claim.token)
        claim = await store.claim_issue("bank", "key-2", "fp", NOW, NOW + STALE, b"draft")
        card = _card("essc-2", "key-2", NOW)
        await store.complete_issue(
            "bank", "key-2", "ISSUED", "essc-2", card, NOW, claim.token, lazy=True
        )
        done = await store.get_issue_attempt("bank", "key-2")
        claim = await store.claim_issue("bank", "key-3", "fp", NOW, NOW + STALE, b"draft")
        await store.complete_issue(
            "bank", "key-3", "ALREADY_HELD", "essc-2", None, NOW, claim.token
        )
    finally:
        await store.close()
    assert flags == [True, True, True, False, True, True]
    assert done is not None  # committed: read back at once
    assert done.essc_id == "essc-2"


async def test_a_heartbeat_is_committed_lazily_and_seen_at_once(any_store: GatewayStore) -> None:
    flags = _record_durability(any_store)
    replica = ReplicaInfo("r1", "host", 1, "127.0.0.1:1", "1", NOW, NOW)
    await any_store.heartbeat(replica)
    assert flags == [False]
    assert [r.replica_id for r in await any_store.replicas()] == ["r1"]
