"""The liability ledger's tables in the PostgreSQL store (the `LedgerStore` port). Replicas
append to one chain: each batch locks the head row, links its records after it and moves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from essc_gateway.evidence.entries import (
    amendment_entry,
    counts_entry,
    incident_entry,
    record_entry,
)
from essc_gateway.liability.model import Amendment, Incident, IncidentKind, LiabilityRecord, Outage
from essc_gateway.store.append_queue import LedgerAppendQueue
from essc_gateway.store.base import DuplicateRecord
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.postgres_cluster import bump_topic
from essc_gateway.store.postgres_evidence import log_append
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import (
    RECORD_COLUMNS,
    amendment_from,
    as_stored,
    outage_from,
    record_from,
    record_values,
)
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")


async def _insert_logged(db: Db, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
    """Appends `records` to the evidence log (its head locked until the transaction ends)
    and inserts them, numbered after the last."""
    logged = await log_append(db, [record_entry(r) for r in records])
    last_seq = await db.fetchval(
        "UPDATE ledger_head SET seq = seq + $1 WHERE id = 1 RETURNING seq", len(records)
    )
    first = int(last_seq) - len(records)
    stored = [
        replace(record, seq=first + n, log_index=entry.index)
        for n, (record, entry) in enumerate(zip(records, logged, strict=True), start=1)
    ]
    try:
        await db.executemany(
            f"INSERT INTO liability_records ({RECORD_COLUMNS}, prev_hash, row_hash) VALUES "  # noqa: S608
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
            "$18, $19, '', '')",
            [record_values(r, as_stored) for r in stored],
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateRecord("a liability record with this request id exists") from None
    return stored


class PostgresLedgerTables(LedgerAppendQueue):
    """Mixed into `PostgresStore`, which provides the pool and the transaction."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    @uncancellable
    async def _append_batch(self, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
        async def work(db: Db) -> list[LiabilityRecord]:
            return await _insert_logged(db, records)

        return await self._write(work)

    @uncancellable
    async def append_liability_if_absent(self, record: LiabilityRecord) -> bool:
        async def work(db: Db) -> bool:
            # The log head's lock first: another process appending the same held record waits.
            await db.execute("SELECT 1 FROM evidence_head WHERE id = 1 FOR UPDATE")
            exists = await db.fetchval(
                "SELECT 1 FROM liability_records WHERE request_id = $1", record.request_id
            )
            if exists is not None:
                return False
            await _insert_logged(db, [record])
            return True

        return await self._write(work)

    async def liability_records(
        self,
        since: datetime,
        until: datetime,
        bank_id: str | None = None,
        holder_token: str | None = None,
    ) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"SELECT {RECORD_COLUMNS} FROM liability_records "  # noqa: S608
            "WHERE at >= $1 AND at < $2 AND ($3::text IS NULL OR bank_id = $3) "
            "AND ($4::text IS NULL OR holder_token = $4) ORDER BY seq",
            since,
            until,
            bank_id,
            holder_token,
        )
        return [record_from(row, as_stored) for row in rows]

    async def liability_records_arrived(
        self, since: datetime, until: datetime
    ) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"SELECT {RECORD_COLUMNS} FROM liability_records "  # noqa: S608
            "WHERE COALESCE(arrived_at, at) >= $1 AND COALESCE(arrived_at, at) < $2 ORDER BY seq",
            since,
            until,
        )
        return [record_from(row, as_stored) for row in rows]

    async def liability_records_by_id(self, request_ids: Sequence[str]) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"SELECT {RECORD_COLUMNS} FROM liability_records "  # noqa: S608
            "WHERE request_id = ANY($1::text[]) ORDER BY seq",
            list(request_ids),
        )
        return [record_from(row, as_stored) for row in rows]

    async def liability_record_count(self) -> int:
        await self.drain_appends()
        rows = await self._rows("SELECT count(*) FROM liability_records")
        return int(rows[0][0])

    async def amendments(self, request_ids: Sequence[str]) -> dict[str, list[Amendment]]:
        found: dict[str, list[Amendment]] = {}
        for row in await self._rows(
            "SELECT * FROM liability_amendments WHERE request_id = ANY($1::text[]) "
            "ORDER BY log_index",
            list(request_ids),
        ):
            amendment = amendment_from(row, as_stored)
            found.setdefault(amendment.request_id, []).append(amendment)
        return found

    @uncancellable
    async def append_amendments(self, amendments: Sequence[Amendment]) -> list[Amendment]:
        async def work(db: Db) -> list[Amendment]:
            # The log head first: replicas amending for the same incident take turns, and
            # the second finds the first's amendments.
            await db.execute("SELECT 1 FROM evidence_head WHERE id = 1 FOR UPDATE")
            written = []
            for amendment in amendments:
                if await db.fetchval(
                    "SELECT 1 FROM liability_amendments WHERE request_id = $1 "
                    "AND incident_id IS NOT DISTINCT FROM $2",
                    amendment.request_id,
                    amendment.incident_id,
                ):
                    continue
                (logged,) = await log_append(db, [amendment_entry(amendment)])
                await db.execute(
                    "INSERT INTO liability_amendments (amendment_id, request_id, incident_id, "
                    "clause, previous_clause, cause, declared_by, declared_at, amended_at, "
                    "log_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    amendment.amendment_id,
                    amendment.request_id,
                    amendment.incident_id,
                    amendment.clause.value,
                    amendment.previous_clause.value,
                    amendment.cause.value,
                    amendment.declared_by,
                    amendment.declared_at,
                    amendment.amended_at,
                    logged.index,
                )
                written.append(replace(amendment, log_index=logged.index))
            return written

        return await self._write(work)

    async def outages_between(self, since: datetime, until: datetime) -> list[Outage]:
        rows = await self._rows(
            "SELECT * FROM outages WHERE started_at < $1 AND (ended_at IS NULL OR ended_at > $2) "
            "ORDER BY started_at",
            until,
            since,
        )
        return [outage_from(row, as_stored) for row in rows]

    async def open_outages(self) -> list[Outage]:
        rows = await self._rows("SELECT * FROM outages WHERE ended_at IS NULL")
        return [outage_from(row, as_stored) for row in rows]

    @uncancellable
    async def save_incident(self, incident: Incident) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO incidents (incident_id, kind, starts_at, ends_at, declared_at, "
                "description, declared_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                incident.incident_id,
                incident.kind.value,
                incident.starts_at,
                incident.ends_at,
                incident.declared_at,
                incident.description,
                incident.declared_by,
            )
            await log_append(db, [incident_entry(incident)])
            await bump_topic(db, SharedTopic.INCIDENTS)

        await self._write(work)

    async def incidents(self) -> list[Incident]:
        rows = await self._rows("SELECT * FROM incidents ORDER BY starts_at")
        return [
            Incident(
                incident_id=r["incident_id"],
                kind=IncidentKind(r["kind"]),
                starts_at=r["starts_at"],
                ends_at=r["ends_at"],
                declared_at=r["declared_at"],
                description=r["description"],
                declared_by=r["declared_by"],
            )
            for r in rows
        ]

    @uncancellable
    async def add_request_counts(self, counts: Sequence[tuple[str, str, int, int]]) -> None:
        async def work(db: Db) -> None:
            await db.executemany(
                "INSERT INTO request_counts (bank_id, day, requests, failed) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (bank_id, day) DO UPDATE SET "
                "requests = request_counts.requests + excluded.requests, "
                "failed = request_counts.failed + excluded.failed",
                counts,
            )
            await log_append(db, [counts_entry(*batch) for batch in counts])

        await self._write(work)

    async def request_counts(self, bank_id: str, month: str) -> tuple[int, int]:
        rows = await self._rows(
            "SELECT COALESCE(sum(requests), 0), COALESCE(sum(failed), 0) FROM request_counts "
            "WHERE bank_id = $1 AND day LIKE $2",
            bank_id,
            f"{month}-%",
        )
        return int(rows[0][0]), int(rows[0][1])
