"""The liability ledger's tables in the SQLite store (the `LedgerStore` port)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite

from essc_gateway.liability.chain import GENESIS, link
from essc_gateway.liability.model import Clause, Incident, IncidentKind, LiabilityRecord, Outage
from essc_gateway.store.sqlite_util import text_of, time_of, time_or_none, uncancellable

R = TypeVar("R")
_RECORD_COLUMNS = (
    "seq, request_id, trace_id, bank_id, rpc, at, status_code, reason, clause, evidence, "
    "outage_id, window_id, incident_id, holder_token, prev_hash, row_hash"
)


def _record(row: sqlite3.Row) -> LiabilityRecord:
    return LiabilityRecord(
        seq=row["seq"],
        request_id=row["request_id"],
        trace_id=row["trace_id"],
        bank_id=row["bank_id"],
        rpc=row["rpc"],
        at=time_of(row["at"]),
        status_code=row["status_code"],
        reason=row["reason"],
        clause=Clause(row["clause"]),
        evidence=json.loads(row["evidence"]),
        outage_id=row["outage_id"],
        window_id=row["window_id"],
        incident_id=row["incident_id"],
        holder_token=row["holder_token"],
        prev_hash=row["prev_hash"],
        row_hash=row["row_hash"],
    )


def _outage(row: sqlite3.Row) -> Outage:
    return Outage(
        outage_id=row["outage_id"],
        scope=row["scope"],
        started_at=time_of(row["started_at"]),
        ended_at=time_or_none(row["ended_at"]),
        reached=bool(row["reached"]),
        last_failure_at=time_of(row["last_failure_at"]),
        status_counts=json.loads(row["status_counts"]),
        affected=json.loads(row["affected"]),
        clause=Clause(row["clause"]),
    )


class LedgerTables:
    """Mixed into `SqliteStore`, which provides the connections and the transaction."""

    _reader: aiosqlite.Connection

    def __init__(self) -> None:
        self._append_queue: list[tuple[LiabilityRecord, asyncio.Future[LiabilityRecord]]] = []
        self._append_task: asyncio.Task[None] | None = None
        self._append_now = asyncio.Event()

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        async with self._reader.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return list(rows)

    async def append_liability(self, record: LiabilityRecord) -> LiabilityRecord:
        """Group commit: appends that arrive while a batch is being committed share the next
        transaction (one fsync for many), and each caller still waits for its own
        durability. The chain is computed inside the transaction, so it has no gaps."""
        return await asyncio.shield(self.enqueue_liability(record))

    def enqueue_liability(
        self, record: LiabilityRecord, *, linger: float = 0.0
    ) -> asyncio.Future[LiabilityRecord]:
        """Queues the append now; the future is done once the record is committed. Reads of
        the ledger wait for queued appends first, so they see every record handed in.

        `linger` > 0 (records nobody waits for): the commit may wait that long for more
        records, so that a stream of them shares one transaction and one fsync."""
        future: asyncio.Future[LiabilityRecord] = asyncio.get_running_loop().create_future()
        self._append_queue.append((record, future))
        if linger <= 0:
            self._append_now.set()
        if self._append_task is None or self._append_task.done():
            self._append_task = asyncio.create_task(self._drain_appends(linger))
        return future

    async def drain_appends(self) -> None:
        """Waits until ledger appends in flight are committed (before closing)."""
        self._append_now.set()
        if self._append_task is not None:
            await asyncio.shield(self._append_task)

    async def _drain_appends(self, linger: float) -> None:
        if linger > 0 and not self._append_now.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._append_now.wait(), linger)
        self._append_now.clear()
        while self._append_queue:
            batch, self._append_queue = self._append_queue, []
            try:
                linked = await self._append_batch([record for record, _ in batch])
            except Exception as error:  # every caller of this batch learns of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), record in zip(batch, linked, strict=True):
                if not future.done():
                    future.set_result(record)

    @uncancellable
    async def append_liability_if_absent(self, record: LiabilityRecord) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            with closing(
                db.execute(
                    "SELECT 1 FROM liability_records WHERE request_id = ?", (record.request_id,)
                )
            ) as cursor:
                if cursor.fetchone() is not None:
                    return False
            _insert_linked(db, [record])
            return True

        return await self._write(work)

    @uncancellable
    async def _append_batch(self, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
        def work(db: sqlite3.Connection) -> list[LiabilityRecord]:
            return _insert_linked(db, records)

        return await self._write(work)

    async def liability_records(
        self,
        since: datetime,
        until: datetime,
        bank_id: str | None = None,
        holder_token: str | None = None,
    ) -> list[LiabilityRecord]:
        await self.drain_appends()
        sql = f"SELECT {_RECORD_COLUMNS} FROM liability_records WHERE at >= ? AND at < ?"  # noqa: S608
        params: list[Any] = [text_of(since), text_of(until)]
        if bank_id is not None:
            sql += " AND bank_id = ?"
            params.append(bank_id)
        if holder_token is not None:
            sql += " AND holder_token = ?"
            params.append(holder_token)
        return [_record(r) for r in await self._rows(sql + " ORDER BY seq", tuple(params))]

    async def all_liability_records(self) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"SELECT {_RECORD_COLUMNS} FROM liability_records ORDER BY seq",  # noqa: S608
            (),
        )
        return [_record(r) for r in rows]

    async def chain_head(self) -> str:
        await self.drain_appends()
        rows = await self._rows(
            "SELECT row_hash FROM liability_records ORDER BY seq DESC LIMIT 1", ()
        )
        return str(rows[0][0]) if rows else GENESIS

    @uncancellable
    async def save_outage(self, outage: Outage) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO outages (outage_id, scope, started_at, ended_at, reached, "
                "last_failure_at, status_counts, affected, clause) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (outage_id) DO UPDATE SET "
                "ended_at = excluded.ended_at, reached = excluded.reached, "
                "last_failure_at = excluded.last_failure_at, "
                "status_counts = excluded.status_counts, affected = excluded.affected, "
                "clause = excluded.clause",
                (
                    outage.outage_id,
                    outage.scope,
                    text_of(outage.started_at),
                    text_of(outage.ended_at),
                    int(outage.reached),
                    text_of(outage.last_failure_at),
                    json.dumps(dict(outage.status_counts), sort_keys=True),
                    json.dumps(dict(outage.affected), sort_keys=True),
                    outage.clause.value,
                ),
            )

        return await self._write(work)

    async def outages_between(self, since: datetime, until: datetime) -> list[Outage]:
        rows = await self._rows(
            "SELECT * FROM outages WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ?) "
            "ORDER BY started_at",
            (text_of(until), text_of(since)),
        )
        return [_outage(r) for r in rows]

    async def open_outages(self) -> list[Outage]:
        rows = await self._rows("SELECT * FROM outages WHERE ended_at IS NULL", ())
        return [_outage(r) for r in rows]

    @uncancellable
    async def save_incident(self, incident: Incident) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO incidents (incident_id, kind, starts_at, ends_at, declared_at, "
                "description) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    incident.incident_id,
                    incident.kind.value,
                    text_of(incident.starts_at),
                    text_of(incident.ends_at),
                    text_of(incident.declared_at),
                    incident.description,
                ),
            )

        return await self._write(work)

    async def incidents(self) -> list[Incident]:
        rows = await self._rows("SELECT * FROM incidents ORDER BY starts_at", ())
        return [
            Incident(
                incident_id=r["incident_id"],
                kind=IncidentKind(r["kind"]),
                starts_at=time_of(r["starts_at"]),
                ends_at=time_of(r["ends_at"]),
                declared_at=time_of(r["declared_at"]),
                description=r["description"],
            )
            for r in rows
        ]

    @uncancellable
    async def add_request_counts(self, counts: Sequence[tuple[str, str, int, int]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO request_counts (bank_id, day, requests, failed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (bank_id, day) DO UPDATE SET "
                "requests = requests + excluded.requests, failed = failed + excluded.failed",
                counts,
            )

        return await self._write(work)

    async def request_counts(self, bank_id: str, month: str) -> tuple[int, int]:
        rows = await self._rows(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(failed), 0) FROM request_counts "
            "WHERE bank_id = ? AND day LIKE ?",
            (bank_id, f"{month}-%"),
        )
        return int(rows[0][0]), int(rows[0][1])


def _insert_linked(db: sqlite3.Connection, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
    """Links `records` after the chain's head and inserts them (inside a transaction)."""
    with closing(
        db.execute("SELECT seq, row_hash FROM liability_records ORDER BY seq DESC LIMIT 1")
    ) as cursor:
        last = cursor.fetchone()
    seq, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    linked = []
    for record in records:
        link_ = _with_chain(record, seq, prev_hash)
        linked.append(link_)
        seq, prev_hash = seq + 1, link_.row_hash
    db.executemany(
        f"INSERT INTO liability_records ({_RECORD_COLUMNS}) "  # noqa: S608 - constant
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.seq,
                r.request_id,
                r.trace_id,
                r.bank_id,
                r.rpc,
                text_of(r.at),
                r.status_code,
                r.reason,
                r.clause.value,
                json.dumps(dict(r.evidence), sort_keys=True),
                r.outage_id,
                r.window_id,
                r.incident_id,
                r.holder_token,
                r.prev_hash,
                r.row_hash,
            )
            for r in linked
        ],
    )
    return linked


def _with_chain(record: LiabilityRecord, seq: int, prev_hash: str) -> LiabilityRecord:
    numbered = replace(record, seq=seq, prev_hash=prev_hash, row_hash="")
    return replace(numbered, row_hash=link(prev_hash, numbered))
