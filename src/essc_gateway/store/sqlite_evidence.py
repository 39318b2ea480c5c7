"""The evidence log's tables in the SQLite store: entries (the Merkle leaves), the complete
subtrees above them, the head (size and frontier), and the signed checkpoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from essc_gateway.evidence.backfill import backfill_entries
from essc_gateway.evidence.entries import Entry, EntryKind
from essc_gateway.evidence.log import (
    LogEntry,
    LogHead,
    StoredCheckpoint,
    TreeHashMismatch,
    append_to,
)
from essc_gateway.evidence.merkle import Frontier, NodeId, TreeHash
from essc_gateway.store.rows import (
    RECORD_SELECT,
    incident_from_row,
    outage_from,
    record_from,
    window_from_snapshot,
)
from essc_gateway.store.sqlite_util import (
    one_row,
    text_of,
    time_of,
    time_or_none,
    uncancellable,
)

R = TypeVar("R")
_HEAD = "SELECT tree_hash, frontier FROM evidence_head WHERE id = 1"


def log_append(db: sqlite3.Connection, entries: Sequence[Entry]) -> list[LogEntry]:
    """Appends `entries` to the log inside the caller's write transaction (SQLite has one
    writer at a time: the head needs no lock of its own)."""
    if not entries:
        return []
    row = one_row(db, _HEAD, ())
    assert row is not None  # made by the migration
    frontier = Frontier.from_bytes(bytes(row[1]), TreeHash(row[0]))
    appended = append_to(frontier, entries)
    db.executemany(
        "INSERT INTO evidence_log (idx, kind, ref, body, leaf_hash) VALUES (?, ?, ?, ?, ?)",
        [(e.index, e.kind.value, e.ref, e.body, e.leaf_hash) for e in appended.entries],
    )
    if appended.nodes:
        db.executemany(
            "INSERT INTO evidence_nodes (level, idx, hash) VALUES (?, ?, ?)",
            [(node.level, node.index, value) for node, value in appended.nodes],
        )
    db.execute("UPDATE evidence_head SET frontier = ? WHERE id = 1", (appended.frontier,))
    return appended.entries


def settle_tree_hash(db: sqlite3.Connection, wanted: TreeHash) -> None:
    """A new log takes the configured hash; an existing one keeps its own."""
    db.execute(
        "UPDATE evidence_head SET tree_hash = ? WHERE id = 1 AND tree_hash IS NULL", (wanted.value,)
    )
    row = one_row(db, "SELECT tree_hash FROM evidence_head WHERE id = 1", ())
    assert row is not None
    if row[0] != wanted.value:
        raise TreeHashMismatch(
            f"the evidence log is hashed with {row[0]}; it cannot change to {wanted.value}"
        )


def backfill(db: sqlite3.Connection) -> int:
    """Logs what the store kept before it had a log (`evidence/backfill.py`), once: when the
    log is empty and there is something to log. Inside the caller's migration lock."""
    head = one_row(db, _HEAD, ())
    assert head is not None  # made by the migration
    if Frontier.from_bytes(bytes(head[1]), TreeHash(head[0])).size:
        return 0
    factory, db.row_factory = db.row_factory, sqlite3.Row
    try:
        windows = [
            window_from_snapshot(r[0], int(r[1]), r[2])
            for r in db.execute(
                "SELECT window_id, version, snapshot FROM maintenance_window_versions"
            )
        ]
        incidents = [
            incident_from_row(r, time_or_none) for r in db.execute("SELECT * FROM incidents")
        ]
        outages = [
            (outage_from(r, time_or_none), r["held_by"] or "")
            for r in db.execute("SELECT * FROM outages")
        ]
        records = [
            record_from(r, time_or_none)
            for r in db.execute(f"{RECORD_SELECT} WHERE log_index IS NULL ORDER BY seq")
        ]
        counts = [
            (str(r[0]), str(r[1]), int(r[2]), int(r[3]))
            for r in db.execute("SELECT bank_id, day, requests, failed FROM request_counts")
        ]
    finally:
        db.row_factory = factory
    entries = backfill_entries(windows, incidents, outages, records, counts)
    if not entries:
        return 0
    db.execute("BEGIN IMMEDIATE")
    try:
        logged = log_append(db, entries)
        for record, entry in zip(records, logged[len(logged) - len(records) :], strict=True):
            db.execute(
                "UPDATE liability_records SET log_index = ? WHERE request_id = ?",
                (entry.index, record.request_id),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(entries)


def _entry(row: Any) -> LogEntry:
    return LogEntry(int(row[0]), EntryKind(row[1]), str(row[2]), bytes(row[3]), bytes(row[4]))


class EvidenceTables:
    """Mixed into `SqliteStore`: the `EvidenceLogStore` port."""

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def drain_appends(self) -> None:
        raise NotImplementedError

    async def log_head(self) -> LogHead:
        await self.drain_appends()
        rows = await self._rows(_HEAD, ())
        frontier = Frontier.from_bytes(bytes(rows[0][1]), TreeHash(rows[0][0]))
        return LogHead(frontier.size, frontier.root(), frontier.tree_hash)

    async def _entries_where(self, where: str, values: Sequence[object]) -> list[LogEntry]:
        """Entries whose `where` (with one `{}` for a list of marks) holds for any of
        `values`, read 500 at a time (SQLite's limit on parameters)."""
        found: list[LogEntry] = []
        for start in range(0, len(values), 500):
            chunk = tuple(values[start : start + 500])
            sql = (
                "SELECT idx, kind, ref, body, leaf_hash FROM evidence_log WHERE "  # noqa: S608
                + where.format(",".join("?" * len(chunk)))
            )
            found += [_entry(r) for r in await self._rows(sql, chunk)]
        return sorted(found, key=lambda e: e.index)

    async def log_entries(self, indices: Sequence[int]) -> list[LogEntry]:
        return await self._entries_where("idx IN ({})", indices)

    async def log_entries_for(self, kind: EntryKind, refs: Sequence[str]) -> list[LogEntry]:
        if kind is EntryKind.LIABILITY_RECORD:  # through the records' own index
            where = "idx IN (SELECT log_index FROM liability_records WHERE request_id IN ({}))"
        else:  # the kind as a literal: the partial index applies
            where = "kind = '" + kind.value + "' AND ref IN ({})"  # an enum value, not input
        return await self._entries_where(where, refs)

    async def append_evidence(self, entries: Sequence[Entry]) -> list[LogEntry]:
        """Entries that stand alone (an operator's access, a disclosure), in one commit."""
        return await self._write(lambda db: log_append(db, entries))

    async def log_entries_of_kind(self, kind: EntryKind, after: int, limit: int) -> list[LogEntry]:
        # The kind as a literal: the planner then sees it matches a partial index's.
        rows = await self._rows(
            "SELECT idx, kind, ref, body, leaf_hash FROM evidence_log "  # noqa: S608
            f"WHERE kind = '{kind.value}' AND idx > ? ORDER BY idx LIMIT ?",
            (after, limit),
        )
        return [_entry(r) for r in rows]

    async def log_range(self, start: int, end: int) -> list[LogEntry]:
        rows = await self._rows(
            "SELECT idx, kind, ref, body, leaf_hash FROM evidence_log "
            "WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )
        return [_entry(r) for r in rows]

    async def log_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        found: dict[NodeId, bytes] = {}
        leaves = [n.index for n in ids if n.level == 0]
        if leaves:
            marks = ",".join("?" * len(leaves))
            for row in await self._rows(
                f"SELECT idx, leaf_hash FROM evidence_log WHERE idx IN ({marks})",  # noqa: S608
                tuple(leaves),
            ):
                found[NodeId(0, int(row[0]))] = bytes(row[1])
        inner = [n for n in ids if n.level > 0]
        if inner:
            where = " OR ".join("(level = ? AND idx = ?)" for _ in inner)
            params = tuple(v for n in inner for v in (n.level, n.index))
            for row in await self._rows(
                f"SELECT level, idx, hash FROM evidence_nodes WHERE {where}",  # noqa: S608
                params,
            ):
                found[NodeId(int(row[0]), int(row[1]))] = bytes(row[2])
        return found

    @uncancellable
    async def save_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT INTO evidence_checkpoints (tree_size, root, note, published_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                (
                    checkpoint.size,
                    checkpoint.root,
                    checkpoint.note,
                    text_of(checkpoint.published_at),
                ),
            )
            return cursor.rowcount == 1

        return await self._write(work)

    async def checkpoints(self, since: datetime | None = None) -> list[StoredCheckpoint]:
        rows = await self._rows(
            "SELECT tree_size, root, note, published_at FROM evidence_checkpoints "
            "WHERE published_at >= ? ORDER BY tree_size",
            (text_of(since) if since else "",),
        )
        return [StoredCheckpoint(int(r[0]), bytes(r[1]), bytes(r[2]), time_of(r[3])) for r in rows]

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._rows(
            "SELECT tree_size, root, note, published_at FROM evidence_checkpoints "
            "ORDER BY tree_size DESC LIMIT 1",
            (),
        )
        return (
            StoredCheckpoint(
                int(rows[0][0]), bytes(rows[0][1]), bytes(rows[0][2]), time_of(rows[0][3])
            )
            if rows
            else None
        )
