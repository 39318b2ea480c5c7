"""The cluster's shared state in the SQLite store (the `ClusterStore` port): what workers of
one host share. Changes are found by polling `state_versions` (one small read)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import datetime
from typing import Any, TypeVar

from essc_gateway.evidence.entries import outage_closed_entry, outage_opened_entry
from essc_gateway.liability.model import Outage
from essc_gateway.store.base import StoreError
from essc_gateway.store.cluster import ChangeListener, RateGrant, ReplicaInfo, SharedTopic
from essc_gateway.store.rate_bucket import refill_and_take
from essc_gateway.store.rows import counts_added, outage_from, replica_from
from essc_gateway.store.sqlite_evidence import log_append
from essc_gateway.store.sqlite_util import one_row, text_of, time_of, time_or_none, uncancellable

R = TypeVar("R")


def bump_topic(db: sqlite3.Connection, topic: SharedTopic) -> None:
    """Counts one change of `topic`, in the transaction that makes it."""
    db.execute(
        "INSERT INTO shared_state (topic, version) VALUES (?, 1) "
        "ON CONFLICT (topic) DO UPDATE SET version = version + 1",
        (topic.value,),
    )


class SqliteClusterTables:
    """Mixed into `SqliteStore`, which provides the connections and the transaction."""

    async def _write(self, work: Callable[[sqlite3.Connection], R], *, durable: bool = True) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def state_versions(self) -> Mapping[SharedTopic, int]:
        rows = await self._rows("SELECT topic, version FROM shared_state", ())
        return {SharedTopic(row[0]): int(row[1]) for row in rows}

    async def listen(self, listener: ChangeListener) -> None:
        """SQLite has no notifications: polling `state_versions` finds every change."""

    @uncancellable
    async def force_circuit(self, operation: str, until: datetime, now: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO forced_circuits (operation, forced_until, forced_at) "
                "VALUES (?, ?, ?) ON CONFLICT (operation) DO UPDATE SET "
                "forced_until = excluded.forced_until, forced_at = excluded.forced_at",
                (operation, text_of(until), text_of(now)),
            )
            bump_topic(db, SharedTopic.CIRCUITS)

        await self._write(work)

    @uncancellable
    async def release_circuit(self, operation: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM forced_circuits WHERE operation = ?", (operation,))
            bump_topic(db, SharedTopic.CIRCUITS)

        await self._write(work)

    async def forced_circuits(self) -> Mapping[str, datetime]:
        rows = await self._rows("SELECT operation, forced_until FROM forced_circuits", ())
        return {row[0]: time_of(row[1]) for row in rows}

    @uncancellable
    async def heartbeat(self, replica: ReplicaInfo) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO replicas (replica_id, host, pid, address, version, started_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (replica_id) "
                "DO UPDATE SET heartbeat_at = excluded.heartbeat_at, address = excluded.address",
                (
                    replica.replica_id,
                    replica.host,
                    replica.pid,
                    replica.address,
                    replica.version,
                    text_of(replica.started_at),
                    text_of(replica.heartbeat_at),
                ),
            )

        await self._write(work, durable=False)  # see ClusterStore.heartbeat

    @uncancellable
    async def forget_replica(self, replica_id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM replicas WHERE replica_id = ?", (replica_id,))

        await self._write(work)

    async def replicas(self) -> list[ReplicaInfo]:
        rows = await self._rows("SELECT * FROM replicas ORDER BY started_at", ())
        return [replica_from(row, time_or_none) for row in rows]

    @uncancellable
    async def open_outage(self, outage: Outage, holder: str) -> Outage:
        def work(db: sqlite3.Connection) -> Outage:
            inserted = db.execute(
                "INSERT INTO outages (outage_id, scope, started_at, ended_at, reached, "
                "last_failure_at, status_counts, affected, clause, held_by) "
                "VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    outage.outage_id,
                    outage.scope,
                    text_of(outage.started_at),
                    int(outage.reached),
                    text_of(outage.last_failure_at),
                    json.dumps(dict(outage.status_counts), sort_keys=True),
                    json.dumps(dict(outage.affected), sort_keys=True),
                    outage.clause.value,
                    holder,
                ),
            ).rowcount
            if inserted == 1:  # a new outage: every replica names it from now on
                bump_topic(db, SharedTopic.OUTAGES)
                log_append(db, [outage_opened_entry(outage, holder)])
            row = one_row(  # the joining replica holds it too (a starting one must not close it)
                db,
                "UPDATE outages SET held_by = ? WHERE scope = ? AND ended_at IS NULL RETURNING *",
                (holder, outage.scope),
            )
            if row is None:
                raise StoreError("open_outage: the open outage vanished")  # one writer
            return outage_from(row, time_or_none)

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
        def work(db: sqlite3.Connection) -> None:
            row = one_row(db, "SELECT * FROM outages WHERE outage_id = ?", (outage_id,))
            if row is None:
                return
            stored = outage_from(row, time_or_none)
            db.execute(
                "UPDATE outages SET status_counts = ?, affected = ?, reached = ?, "
                "last_failure_at = MAX(last_failure_at, ?), held_by = ? WHERE outage_id = ?",
                (
                    json.dumps(counts_added(stored.status_counts, status_counts), sort_keys=True),
                    json.dumps(counts_added(stored.affected, affected), sort_keys=True),
                    int(stored.reached or reached),
                    text_of(last_failure_at),
                    holder,
                    outage_id,
                ),
            )

        await self._write(work)

    @uncancellable
    async def close_outage(self, outage_id: str, ended_at: datetime) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            row = one_row(
                db,
                "UPDATE outages SET ended_at = ? WHERE outage_id = ? AND ended_at IS NULL "
                "RETURNING *",
                (text_of(ended_at), outage_id),
            )
            if row is None:
                return False
            bump_topic(db, SharedTopic.OUTAGES)
            log_append(db, [outage_closed_entry(outage_from(row, time_or_none))])
            return True

        return await self._write(work)

    @uncancellable
    async def close_outages_held_by_none_of(self, live_replicas: frozenset[str]) -> int:
        def work(db: sqlite3.Connection) -> int:
            with closing(
                db.execute("SELECT outage_id, held_by FROM outages WHERE ended_at IS NULL")
            ) as cursor:
                orphaned = [row[0] for row in cursor.fetchall() if row[1] not in live_replicas]
            for outage_id in orphaned:
                row = one_row(
                    db,
                    "UPDATE outages SET ended_at = last_failure_at WHERE outage_id = ? RETURNING *",
                    (outage_id,),
                )
                if row is not None:
                    log_append(db, [outage_closed_entry(outage_from(row, time_or_none))])
            if orphaned:
                bump_topic(db, SharedTopic.OUTAGES)
            return len(orphaned)

        return await self._write(work)

    @uncancellable
    async def take_rate_tokens(
        self, bank_id: str, wanted: int, now: datetime, per_second: float, burst: float
    ) -> RateGrant:
        def work(db: sqlite3.Connection) -> RateGrant:
            row = one_row(
                db, "SELECT tokens, updated_at FROM rate_buckets WHERE bank_id = ?", (bank_id,)
            )
            tokens, updated = (burst, now) if row is None else (row[0], time_of(row[1]))
            left, grant, moment = refill_and_take(tokens, updated, wanted, now, per_second, burst)
            db.execute(
                "INSERT INTO rate_buckets (bank_id, tokens, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (bank_id) DO UPDATE SET tokens = excluded.tokens, "
                "updated_at = excluded.updated_at",
                (bank_id, left, text_of(moment)),
            )
            return grant

        # Losing a token count in a crash costs nothing: no fsync wait for it.
        return await self._write(work, durable=False)
