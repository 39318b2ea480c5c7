"""The liability ledger's tables in the SQLite store (the `LedgerStore` port)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite

from essc_gateway.liability.chain import GENESIS, linked_after
from essc_gateway.liability.model import Incident, IncidentKind, LiabilityRecord, Outage
from essc_gateway.store.append_queue import LedgerAppendQueue
from essc_gateway.store.base import DuplicateRecord
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.rows import RECORD_COLUMNS, outage_from, record_from, record_values
from essc_gateway.store.sqlite_cluster import bump_topic
from essc_gateway.store.sqlite_util import text_of, time_of, time_or_none, uncancellable

R = TypeVar("R")


class LedgerTables(LedgerAppendQueue):
    """Mixed into `SqliteStore`, which provides the connections and the transaction."""

    _reader: aiosqlite.Connection

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        async with self._reader.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return list(rows)

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
        sql = f"SELECT {RECORD_COLUMNS} FROM liability_records WHERE at >= ? AND at < ?"  # noqa: S608
        params: list[Any] = [text_of(since), text_of(until)]
        if bank_id is not None:
            sql += " AND bank_id = ?"
            params.append(bank_id)
        if holder_token is not None:
            sql += " AND holder_token = ?"
            params.append(holder_token)
        return [
            record_from(r, time_or_none)
            for r in await self._rows(sql + " ORDER BY seq", tuple(params))
        ]

    async def all_liability_records(self) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"SELECT {RECORD_COLUMNS} FROM liability_records ORDER BY seq",  # noqa: S608
            (),
        )
        return [record_from(r, time_or_none) for r in rows]

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
        return [outage_from(r, time_or_none) for r in rows]

    async def open_outages(self) -> list[Outage]:
        rows = await self._rows("SELECT * FROM outages WHERE ended_at IS NULL", ())
        return [outage_from(r, time_or_none) for r in rows]

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
            bump_topic(db, SharedTopic.INCIDENTS)

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
    linked = linked_after(records, *((int(last[0]), str(last[1])) if last else (0, GENESIS)))
    try:
        _insert_rows(db, linked)
    except sqlite3.IntegrityError as duplicate:
        if "request_id" not in str(duplicate):
            raise
        raise DuplicateRecord("a liability record with this request id exists") from None
    return linked


def _insert_rows(db: sqlite3.Connection, linked: list[LiabilityRecord]) -> None:
    db.executemany(
        f"INSERT INTO liability_records ({RECORD_COLUMNS}) "  # noqa: S608 - constant
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [record_values(r, text_of(r.at)) for r in linked],
    )
