"""The evidence log's tables in the PostgreSQL store. Replicas append to one tree: each write
that logs a fact locks the head row, appends after it and moves it, in its own transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from essc_gateway.evidence.backfill import backfill_entries
from essc_gateway.evidence.entries import Entry, EntryKind
from essc_gateway.evidence.log import (
    Appended,
    LogEntry,
    LogHead,
    StoredCheckpoint,
    TreeHashMismatch,
    append_to,
)
from essc_gateway.evidence.merkle import Frontier, NodeId, TreeHash
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import (
    RECORD_SELECT,
    as_stored,
    incident_from_row,
    outage_from,
    record_from,
    window_from_snapshot,
)
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")
_COLUMNS = "idx, kind, ref, body, leaf_hash"


LOG_WRITE = (
    "log AS (INSERT INTO evidence_log (idx, kind, ref, body, leaf_hash) SELECT * FROM "
    "unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bytea[])), "
    "nodes AS (INSERT INTO evidence_nodes (level, idx, hash) SELECT * FROM "
    "unnest($6::int[], $7::bigint[], $8::bytea[])), "
    "head AS (UPDATE evidence_head SET frontier = $9 WHERE id = 1)"
)
"""The writes of an append, as data-modifying CTEs taking $1..$9 (`log_write_args`): one
statement, one round trip, to which a caller may add its own rows (`postgres_ledger`)."""


async def prepare_append(db: Db, entries: Sequence[Entry]) -> Appended:
    """Locks the head until the transaction ends (concurrent appenders of every replica take
    turns) and computes the append: leaves, completed nodes, the new frontier."""
    head = await db.fetchrow(
        "SELECT tree_hash, frontier FROM evidence_head WHERE id = 1 FOR UPDATE"
    )
    assert head is not None  # made by the migration
    frontier = Frontier.from_bytes(bytes(head["frontier"]), TreeHash(head["tree_hash"]))
    return append_to(frontier, entries)


def log_write_args(appended: Appended) -> list[Any]:
    return [
        [e.index for e in appended.entries],
        [e.kind.value for e in appended.entries],
        [e.ref for e in appended.entries],
        [e.body for e in appended.entries],
        [e.leaf_hash for e in appended.entries],
        [node.level for node, _ in appended.nodes],
        [node.index for node, _ in appended.nodes],
        [value for _, value in appended.nodes],
        appended.frontier,
    ]


async def log_append(db: Db, entries: Sequence[Entry]) -> list[LogEntry]:
    """Appends `entries` inside the caller's transaction (two round trips)."""
    if not entries:
        return []
    appended = await prepare_append(db, entries)
    await db.execute(f"WITH {LOG_WRITE} SELECT 1", *log_write_args(appended))
    return appended.entries


async def settle_tree_hash(db: Db, wanted: TreeHash) -> None:
    """A new log takes the configured hash; an existing one keeps its own."""
    await db.execute(
        "UPDATE evidence_head SET tree_hash = $1 WHERE id = 1 AND tree_hash IS NULL",
        wanted.value,
    )
    stored = await db.fetchval("SELECT tree_hash FROM evidence_head WHERE id = 1")
    if stored != wanted.value:
        raise TreeHashMismatch(
            f"the evidence log is hashed with {stored}; it cannot change to {wanted.value}"
        )


async def backfill(db: Db) -> int:
    """Logs what the store kept before it had a log (`evidence/backfill.py`), once: when the
    log is empty and there is something to log. Inside the caller's transaction, under the
    migrations' lock (replicas starting at once do it once)."""
    head = await prepare_append(db, [])
    if head.size:
        return 0
    windows = [
        window_from_snapshot(r[0], int(r[1]), r[2])
        for r in await db.fetch(
            "SELECT window_id, version, snapshot FROM maintenance_window_versions"
        )
    ]
    incidents = [incident_from_row(r, as_stored) for r in await db.fetch("SELECT * FROM incidents")]
    outages = [
        (outage_from(r, as_stored), r["held_by"] or "")
        for r in await db.fetch("SELECT * FROM outages")
    ]
    records = [
        record_from(r, as_stored)
        for r in await db.fetch(f"{RECORD_SELECT} WHERE log_index IS NULL ORDER BY seq")
    ]
    counts = [
        (str(r[0]), str(r[1]), int(r[2]), int(r[3]))
        for r in await db.fetch("SELECT bank_id, day, requests, failed FROM request_counts")
    ]
    entries = backfill_entries(windows, incidents, outages, records, counts)
    if not entries:
        return 0
    logged = await log_append(db, entries)
    await db.executemany(
        "UPDATE liability_records SET log_index = $1 WHERE request_id = $2",
        [
            (entry.index, record.request_id)
            for record, entry in zip(records, logged[len(logged) - len(records) :], strict=True)
        ],
    )
    return len(entries)


def _entry(row: asyncpg.Record) -> LogEntry:
    return LogEntry(
        int(row["idx"]),
        EntryKind(row["kind"]),
        row["ref"],
        bytes(row["body"]),
        bytes(row["leaf_hash"]),
    )


def _checkpoint(row: asyncpg.Record) -> StoredCheckpoint:
    return StoredCheckpoint(
        int(row["tree_size"]), bytes(row["root"]), bytes(row["note"]), row["published_at"]
    )


class PostgresEvidenceTables:
    """Mixed into `PostgresStore`: the `EvidenceLogStore` port."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def drain_appends(self) -> None:
        raise NotImplementedError

    async def log_head(self) -> LogHead:
        await self.drain_appends()
        rows = await self._rows("SELECT tree_hash, frontier FROM evidence_head WHERE id = 1")
        frontier = Frontier.from_bytes(bytes(rows[0]["frontier"]), TreeHash(rows[0]["tree_hash"]))
        return LogHead(frontier.size, frontier.root(), frontier.tree_hash)

    async def log_entries(self, indices: Sequence[int]) -> list[LogEntry]:
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM evidence_log WHERE idx = ANY($1::bigint[]) ORDER BY idx",  # noqa: S608
            list(indices),
        )
        return [_entry(r) for r in rows]

    async def log_entries_for(self, kind: EntryKind, refs: Sequence[str]) -> list[LogEntry]:
        if kind is EntryKind.LIABILITY_RECORD:  # through the records' own index
            rows = await self._rows(
                f"SELECT {_COLUMNS} FROM evidence_log WHERE idx IN (SELECT log_index FROM "  # noqa: S608
                "liability_records WHERE request_id = ANY($1::text[])) ORDER BY idx",
                list(refs),
            )
        else:  # the kind as a literal: the partial index applies to every plan
            rows = await self._rows(
                f"SELECT {_COLUMNS} FROM evidence_log WHERE kind = '{kind.value}' "  # noqa: S608
                "AND ref = ANY($1::text[]) ORDER BY idx",
                list(refs),
            )
        return [_entry(r) for r in rows]

    async def append_evidence(self, entries: Sequence[Entry]) -> list[LogEntry]:
        """Entries that stand alone (an operator's access, a disclosure), in one commit."""

        async def work(db: Db) -> list[LogEntry]:
            return await log_append(db, entries)

        return await self._write(work)

    async def log_entries_of_kind(self, kind: EntryKind, after: int, limit: int) -> list[LogEntry]:
        # The kind as a literal: the planner then sees it matches a partial index's.
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM evidence_log WHERE kind = '{kind.value}' "  # noqa: S608
            "AND idx > $1 ORDER BY idx LIMIT $2",
            after,
            limit,
        )
        return [_entry(r) for r in rows]

    async def log_range(self, start: int, end: int) -> list[LogEntry]:
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM evidence_log WHERE idx >= $1 AND idx < $2 ORDER BY idx",  # noqa: S608
            start,
            end,
        )
        return [_entry(r) for r in rows]

    async def log_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        found: dict[NodeId, bytes] = {}
        leaves = [n.index for n in ids if n.level == 0]
        if leaves:
            for row in await self._rows(
                "SELECT idx, leaf_hash FROM evidence_log WHERE idx = ANY($1::bigint[])", leaves
            ):
                found[NodeId(0, int(row["idx"]))] = bytes(row["leaf_hash"])
        inner = [n for n in ids if n.level > 0]
        if inner:
            for row in await self._rows(
                "SELECT n.level, n.idx, n.hash FROM evidence_nodes n JOIN "
                "unnest($1::int[], $2::bigint[]) AS wanted (level, idx) "
                "ON n.level = wanted.level AND n.idx = wanted.idx",
                [n.level for n in inner],
                [n.index for n in inner],
            ):
                found[NodeId(int(row["level"]), int(row["idx"]))] = bytes(row["hash"])
        return found

    @uncancellable
    async def save_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        async def work(db: Db) -> bool:
            status = await db.execute(
                "INSERT INTO evidence_checkpoints (tree_size, root, note, published_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING",
                checkpoint.size,
                checkpoint.root,
                checkpoint.note,
                checkpoint.published_at,
            )
            return str(status).endswith(" 1")

        return await self._write(work)

    async def checkpoints(self, since: datetime | None = None) -> list[StoredCheckpoint]:
        if since is None:
            rows = await self._rows("SELECT * FROM evidence_checkpoints ORDER BY tree_size")
        else:
            rows = await self._rows(
                "SELECT * FROM evidence_checkpoints WHERE published_at >= $1 ORDER BY tree_size",
                since,
            )
        return [_checkpoint(r) for r in rows]

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._rows(
            "SELECT * FROM evidence_checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        return _checkpoint(rows[0]) if rows else None
