"""Which writes wait for the fsync (see `Store`): a factor check's reservation, success and
release, a heartbeat and an Issue's own ISSUED completion are committed lazily; an Issue's
claim (its one durable commit, before IssueCard leaves), an in-doubt mark, an ALREADY_HELD or
forwarded completion and a factor failure are durable before the answer. Lazy writes are
committed all the same: visible to every reader at once.

On PostgreSQL the batched completion turns `synchronous_commit` off for its own implicit
transaction (`set_config(..., true)` in the statement): these tests read the setting the
commit uses. That the server honours it there was measured, not tested (the counts of
`pg_stat_wal` are the server's, shared with every other session): 300 such statements made
1 WAL sync (the WAL writer's), 300 durable ones 301."""

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


async def test_postgres_commits_a_batch_of_claims_durably(
    postgres_location: PostgresDatabase,
) -> None:
    # A claim answered IN_DOUBT later must survive a database crash (see Store.claim_issue).
    store = await PostgresStore.open(postgres_location)  # creates the tables
    await store.close()
    connection = await asyncpg.connect(postgres_location.dsn)
    try:
        claim = NewClaim("bank", "key-1", "fp", NOW, NOW + STALE, None, "token")
        async with connection.transaction():
            assert await claim_many(connection, [claim]) == [True]
            in_claim = await connection.fetchval("SHOW synchronous_commit")
    finally:
        await connection.close()
    assert in_claim == "on"


async def test_postgres_commits_a_batch_of_completions_lazily(
    postgres_location: PostgresDatabase,
) -> None:
    store = await PostgresStore.open(postgres_location)
    try:
        claim = await store.claim_issue("bank", "key-1", "fp", NOW, NOW + STALE, b"draft")
    finally:
        await store.close()
    connection = await asyncpg.connect(postgres_location.dsn)
    try:
        completion = Completion(
            "bank", "key-1", "ISSUED", "essc-1", _card("essc-1", "key-1", NOW), NOW, claim.token
        )
        async with connection.transaction():  # to read the setting the commit will use
            assert await complete_many(connection, [completion]) == [True]
            in_completion = await connection.fetchval("SHOW synchronous_commit")
        after = await connection.fetchval("SHOW synchronous_commit")
    finally:
        await connection.close()
    assert (in_completion, after) == ("off", "on")  # for its own transaction only


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
