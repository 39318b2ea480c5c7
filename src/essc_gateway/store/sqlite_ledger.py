"""The liability ledger's tables in the SQLite store (the `LedgerStore` port)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite

from essc_gateway.evidence.entries import (
    amendment_entry,
    counts_entry,
    incident_entry,
    record_entry,
)
from essc_gateway.liability.model import Amendment, Incident, LiabilityRecord, Outage
from essc_gateway.store.append_queue import LedgerAppendQueue
from essc_gateway.store.base import DuplicateRecord
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.rows import (
    RECORD_COLUMNS,
    RECORD_SELECT,
    IndexRow,
    amendment_from,
    amendment_values,
    incident_from_row,
    index_row_from,
    outage_from,
    record_from,
    record_values,
)
from essc_gateway.store.sqlite_cluster import bump_topic
from essc_gateway.store.sqlite_evidence import log_append
from essc_gateway.store.sqlite_util import (
    one_row,
    text_of,
    time_or_none,
    uncancellable,
)

R = TypeVar("R")


class LedgerTables(LedgerAppendQueue):
    """Mixed into `SqliteStore`, which provides the connections and the transaction."""

    _reader: aiosqlite.Connection

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        # One hand-off to the reader's thread (execute, fetch and close there), not three.
        return list(await self._reader.execute_fetchall(sql, params))

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
            insert_logged(db, [record])
            return True

        return await self._write(work)

    @uncancellable
    async def _append_batch(self, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
        def work(db: sqlite3.Connection) -> list[LiabilityRecord]:
            return insert_logged(db, records)

        return await self._write(work)

    async def liability_records(
        self,
        since: datetime,
        until: datetime,
        bank_id: str | None = None,
        holder_token: str | None = None,
    ) -> list[LiabilityRecord]:
        await self.drain_appends()
        sql = f"{RECORD_SELECT} WHERE at >= ? AND at < ?"
        params: list[Any] = [text_of(since), text_of(until)]
        if bank_id is not None:
            sql += " AND bank_id = ?"
            params.append(bank_id)
        if holder_token is not None:  # the holder's lookup token: through the links
            sql += (
                " AND request_id IN (SELECT request_id FROM holder_links "
                "WHERE bank_id = liability_records.bank_id AND holder_token = ?)"
            )
            params.append(holder_token)
        return [
            record_from(r, time_or_none)
            for r in await self._rows(sql + " ORDER BY seq", tuple(params))
        ]

    async def liability_records_arrived(
        self, since: datetime, until: datetime
    ) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"{RECORD_SELECT} WHERE arrived_at >= ? AND arrived_at < ? ORDER BY seq",
            (text_of(since), text_of(until)),
        )
        return [record_from(r, time_or_none) for r in rows]

    async def liability_index(self, request_ids: Sequence[str]) -> list[IndexRow]:
        await self.drain_appends()
        found = []
        for start in range(0, len(request_ids), 500):
            chunk = tuple(request_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = await self._rows(
                f"SELECT * FROM liability_records WHERE request_id IN ({marks})",  # noqa: S608
                chunk,
            )
            found += [index_row_from(r, time_or_none) for r in rows]
        return found

    async def liability_record_count(self, below_index: int) -> int:
        await self.drain_appends()
        rows = await self._rows(
            "SELECT COUNT(*) FROM liability_records WHERE log_index IS NULL OR log_index < ?",
            (below_index,),
        )
        return int(rows[0][0])

    async def amendments(self, request_ids: Sequence[str]) -> dict[str, list[Amendment]]:
        found: dict[str, list[Amendment]] = {}
        for start in range(0, len(request_ids), 500):
            chunk = tuple(request_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in await self._rows(
                f"SELECT * FROM liability_amendments WHERE request_id IN ({marks}) "  # noqa: S608
                "ORDER BY log_index",
                chunk,
            ):
                amendment = amendment_from(row, time_or_none)
                found.setdefault(amendment.request_id, []).append(amendment)
        return found

    @uncancellable
    async def append_amendments(self, amendments: Sequence[Amendment]) -> list[Amendment]:
        def work(db: sqlite3.Connection) -> list[Amendment]:
            fresh = [
                a
                for a in amendments
                if not one_row(  # another replica amended it for this incident first
                    db,
                    "SELECT 1 FROM liability_amendments WHERE request_id = ? AND incident_id = ?",
                    (a.request_id, a.incident_id),
                )
            ]
            logged = log_append(db, [amendment_entry(a) for a in fresh])
            written = [
                replace(a, log_index=entry.index) for a, entry in zip(fresh, logged, strict=True)
            ]
            db.executemany(
                "INSERT INTO liability_amendments (amendment_id, request_id, incident_id, "
                "clause, previous_clause, cause, declared_by, declared_at, amended_at, "
                "log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [amendment_values(a, text_of) for a in written],
            )
            return written

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
                "description, declared_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    incident.incident_id,
                    incident.kind.value,
                    text_of(incident.starts_at),
                    text_of(incident.ends_at),
                    text_of(incident.declared_at),
                    incident.description,
                    incident.declared_by,
                ),
            )
            log_append(db, [incident_entry(incident)])
            bump_topic(db, SharedTopic.INCIDENTS)

        return await self._write(work)

    async def incidents(self) -> list[Incident]:
        rows = await self._rows("SELECT * FROM incidents ORDER BY starts_at", ())
        return [incident_from_row(r, time_or_none) for r in rows]

    @uncancellable
    async def add_request_counts(self, counts: Sequence[tuple[str, str, int, int]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO request_counts (bank_id, day, requests, failed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (bank_id, day) DO UPDATE SET "
                "requests = requests + excluded.requests, failed = failed + excluded.failed",
                counts,
            )
            log_append(db, [counts_entry(*batch) for batch in counts])

        return await self._write(work)

    async def request_counts(self, bank_id: str, month: str) -> tuple[int, int]:
        rows = await self._rows(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(failed), 0) FROM request_counts "
            "WHERE bank_id = ? AND day LIKE ?",
            (bank_id, f"{month}-%"),
        )
        return int(rows[0][0]), int(rows[0][1])


def insert_logged(db: sqlite3.Connection, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
    """Appends `records` to the evidence log and inserts them (inside a transaction)."""
    row = one_row(db, "SELECT COALESCE(MAX(seq), 0) FROM liability_records", ())
    last_seq = int(row[0]) if row else 0
    logged = log_append(db, [record_entry(r) for r in records])
    stored = [
        record.placed(last_seq + n, entry.index)
        for n, (record, entry) in enumerate(zip(records, logged, strict=True), start=1)
    ]
    try:
        db.executemany(
            f"INSERT INTO liability_records ({RECORD_COLUMNS}, prev_hash, row_hash) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '')",
            [record_values(r, text_of) for r in stored],
        )
    except sqlite3.IntegrityError as duplicate:
        if "request_id" not in str(duplicate):
            raise
        raise DuplicateRecord("a liability record with this request id exists") from None
    # A record that arrived before its bank's last erasure gets no link: appended late (or
    # held through an outage), it must not lead back to a holder erased meanwhile (A14).
    db.executemany(
        "INSERT INTO holder_links (request_id, bank_id, holder_token, salt) "
        "SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM erasure_marks "
        "WHERE bank_id = ?2 AND erased_at >= ?5)",
        [
            (
                r.request_id, r.bank_id, r.holder_link.lookup_token, r.holder_link.salt,
                text_of(r.arrival),
            )
            for r in records
            if r.holder_link is not None
        ],
    )  # fmt: skip
    return stored
