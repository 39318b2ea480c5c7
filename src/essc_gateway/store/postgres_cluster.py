"""The cluster's shared state in the PostgreSQL store (the `ClusterStore` port). A change
counts one in `shared_state` and sends a NOTIFY in the same transaction (delivered when it
commits), so that every replica hears of it at once; polling the counts covers the moments
a replica's listening connection was down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from essc_gateway.evidence.entries import outage_closed_entry, outage_opened_entry
from essc_gateway.liability.model import Outage
from essc_gateway.store.cluster import ChangeListener, RateGrant, ReplicaInfo, SharedTopic
from essc_gateway.store.location import PostgresDatabase
from essc_gateway.store.postgres_evidence import log_append
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rate_bucket import refill_and_take
from essc_gateway.store.rows import as_stored, counts_added, outage_from, replica_from
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")
CHANNEL = "essc_shared_state"
_RELISTEN_AFTER = 1.0
log = logging.getLogger("essc_gateway.store")


async def bump_topic(db: Db, topic: SharedTopic) -> None:
    """Counts one change of `topic` and tells every listening replica, on commit."""
    await db.execute(
        "INSERT INTO shared_state (topic, version) VALUES ($1, 1) "
        "ON CONFLICT (topic) DO UPDATE SET version = shared_state.version + 1",
        topic.value,
    )
    await db.execute("SELECT pg_notify($1, $2)", CHANNEL, topic.value)


class PostgresClusterTables:
    """Mixed into `PostgresStore`, which provides the pool and the transaction."""

    _database: PostgresDatabase
    _listener_task: asyncio.Task[None] | None = None

    async def _write(self, transaction: Callable[[Db], Awaitable[R]], *, durable: bool = True) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def state_versions(self) -> Mapping[SharedTopic, int]:
        rows = await self._rows("SELECT topic, version FROM shared_state")
        return {SharedTopic(row[0]): int(row[1]) for row in rows}

    async def listen(self, listener: ChangeListener) -> None:
        """Keeps a connection of its own listening (reconnecting after a loss) until close."""
        ready = asyncio.Event()
        self._listener_task = asyncio.create_task(
            self._keep_listening(listener, ready), name="essc-store-listen"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 5.0)

    async def _keep_listening(self, listener: ChangeListener, ready: asyncio.Event) -> None:
        def heard(_: object, __: int, ___: str, payload: object) -> None:
            if isinstance(payload, str) and payload in SharedTopic.__members__.values():
                listener(SharedTopic(payload))

        while True:
            try:
                await self._listen_until_lost(heard, ready)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database away: polling covers it meanwhile
                log.warning("store notifications lost: %s", type(error).__name__)
            await asyncio.sleep(_RELISTEN_AFTER)

    async def _listen_until_lost(self, heard: Any, ready: asyncio.Event) -> None:
        connection = await asyncpg.connect(self._database.dsn, timeout=5.0)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(CHANNEL, heard)
            ready.set()
            await lost.wait()
        finally:
            if not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1.0)

    async def stop_listening(self) -> None:
        task, self._listener_task = self._listener_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @uncancellable
    async def force_circuit(self, operation: str, until: datetime, now: datetime) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO forced_circuits (operation, forced_until, forced_at) "
                "VALUES ($1, $2, $3) ON CONFLICT (operation) DO UPDATE SET "
                "forced_until = excluded.forced_until, forced_at = excluded.forced_at",
                operation,
                until,
                now,
            )
            await bump_topic(db, SharedTopic.CIRCUITS)

        await self._write(work)

    @uncancellable
    async def release_circuit(self, operation: str) -> None:
        async def work(db: Db) -> None:
            await db.execute("DELETE FROM forced_circuits WHERE operation = $1", operation)
            await bump_topic(db, SharedTopic.CIRCUITS)

        await self._write(work)

    async def forced_circuits(self) -> Mapping[str, datetime]:
        rows = await self._rows("SELECT operation, forced_until FROM forced_circuits")
        return {row[0]: row[1] for row in rows}

    @uncancellable
    async def heartbeat(self, replica: ReplicaInfo) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO replicas (replica_id, host, pid, address, version, started_at, "
                "heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (replica_id) "
                "DO UPDATE SET heartbeat_at = excluded.heartbeat_at, address = excluded.address",
                replica.replica_id,
                replica.host,
                replica.pid,
                replica.address,
                replica.version,
                replica.started_at,
                replica.heartbeat_at,
            )

        await self._write(work, durable=False)  # see ClusterStore.heartbeat

    @uncancellable
    async def forget_replica(self, replica_id: str) -> None:
        async def work(db: Db) -> None:
            await db.execute("DELETE FROM replicas WHERE replica_id = $1", replica_id)

        await self._write(work)

    async def replicas(self) -> list[ReplicaInfo]:
        rows = await self._rows("SELECT * FROM replicas ORDER BY started_at")
        return [replica_from(row, as_stored) for row in rows]

    @uncancellable
    async def open_outage(self, outage: Outage, holder: str) -> Outage:
        async def work(db: Db) -> Outage:
            # The open one may end between this INSERT and its SELECT: then insert again.
            while True:
                inserted = await db.fetchval(
                    "INSERT INTO outages (outage_id, scope, started_at, ended_at, reached, "
                    "last_failure_at, status_counts, affected, clause, held_by) "
                    "VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING "
                    "RETURNING 1",
                    outage.outage_id,
                    outage.scope,
                    outage.started_at,
                    outage.reached,
                    outage.last_failure_at,
                    json.dumps(dict(outage.status_counts), sort_keys=True),
                    json.dumps(dict(outage.affected), sort_keys=True),
                    outage.clause.value,
                    holder,
                )
                if inserted is not None:  # a new outage: every replica names it from now on
                    await bump_topic(db, SharedTopic.OUTAGES)
                    await log_append(db, [outage_opened_entry(outage, holder)])
                row = await db.fetchrow(
                    "UPDATE outages SET held_by = $2 WHERE scope = $1 AND ended_at IS NULL "
                    "RETURNING *",
                    outage.scope,
                    holder,
                )
                if row is not None:
                    return outage_from(row, as_stored)

        return await self._write(work)

    @uncancellable
    async def add_to_outage(
        self,
        outage_id: str,
        status_counts: Mapping[str, int],
        affected: Mapping[str, int],
        last_failure_at: datetime,
        reached: bool,
        holder: str,
    ) -> None:
        async def work(db: Db) -> None:
            row = await db.fetchrow(
                "SELECT * FROM outages WHERE outage_id = $1 FOR UPDATE", outage_id
            )
            if row is None:
                return
            stored = outage_from(row, as_stored)
            await db.execute(
                "UPDATE outages SET status_counts = $1, affected = $2, reached = $3, "
                "last_failure_at = GREATEST(last_failure_at, $4), held_by = $5 "
                "WHERE outage_id = $6",
                json.dumps(counts_added(stored.status_counts, status_counts), sort_keys=True),
                json.dumps(counts_added(stored.affected, affected), sort_keys=True),
                stored.reached or reached,
                last_failure_at,
                holder,
                outage_id,
            )

        await self._write(work)

    @uncancellable
    async def close_outage(self, outage_id: str, ended_at: datetime) -> bool:
        async def work(db: Db) -> bool:
            closed = await db.fetchrow(
                "UPDATE outages SET ended_at = $1 WHERE outage_id = $2 AND ended_at IS NULL "
                "RETURNING *",
                ended_at,
                outage_id,
            )
            if closed is None:
                return False
            await bump_topic(db, SharedTopic.OUTAGES)
            await log_append(db, [outage_closed_entry(outage_from(closed, as_stored))])
            return True

        return await self._write(work)

    @uncancellable
    async def close_outages_held_by_none_of(self, live_replicas: frozenset[str]) -> int:
        async def work(db: Db) -> int:
            rows = await db.fetch(
                "UPDATE outages SET ended_at = last_failure_at WHERE ended_at IS NULL "
                "AND (held_by IS NULL OR NOT held_by = ANY($1::text[])) RETURNING *",
                sorted(live_replicas),
            )
            if rows:
                await bump_topic(db, SharedTopic.OUTAGES)
                await log_append(
                    db, [outage_closed_entry(outage_from(row, as_stored)) for row in rows]
                )
            return len(rows)

        return await self._write(work)

    @uncancellable
    async def take_rate_tokens(
        self, bank_id: str, wanted: int, now: datetime, per_second: float, burst: float
    ) -> RateGrant:
        async def work(db: Db) -> RateGrant:
            await db.execute(
                "INSERT INTO rate_buckets (bank_id, tokens, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (bank_id) DO NOTHING",
                bank_id,
                burst,
                now,
            )
            row = await db.fetchrow(
                "SELECT tokens, updated_at FROM rate_buckets WHERE bank_id = $1 FOR UPDATE",
                bank_id,
            )
            assert row is not None
            left, grant, moment = refill_and_take(row[0], row[1], wanted, now, per_second, burst)
            await db.execute(
                "UPDATE rate_buckets SET tokens = $1, updated_at = $2 WHERE bank_id = $3",
                left,
                moment,
                bank_id,
            )
            return grant

        # Losing a token count in a crash costs nothing: no fsync wait for it.
        return await self._write(work, durable=False)
