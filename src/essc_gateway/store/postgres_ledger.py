"""The liability ledger's tables in the PostgreSQL store (the `LedgerStore` port). Replicas
append to one chain: each batch locks the head row, links its records after it and moves it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from essc_gateway.liability.chain import linked_after
from essc_gateway.liability.model import Incident, IncidentKind, LiabilityRecord, Outage
from essc_gateway.store.append_queue import LedgerAppendQueue
from essc_gateway.store.base import DuplicateRecord
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.postgres_cluster import bump_topic
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import (
    RECORD_COLUMNS,
    as_stored,
    outage_from,
    record_from,
    record_values,
)
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")


async def _insert_linked(db: Db, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
    """Links `records` after the head (locked until the transaction ends) and inserts them."""
    head = await db.fetchrow("SELECT seq, row_hash FROM ledger_head WHERE id = 1 FOR UPDATE")
    assert head is not None
    linked = linked_after(records, int(head["seq"]), str(head["row_hash"]))
    try:
        await db.executemany(
            f"INSERT INTO liability_records ({RECORD_COLUMNS}) VALUES "  # noqa: S608
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            [record_values(r, r.at) for r in linked],
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateRecord("a liability record with this request id exists") from None
    await db.execute(
        "UPDATE ledger_head SET seq = $1, row_hash = $2 WHERE id = 1",
        linked[-1].seq,
        linked[-1].row_hash,
    )
    return linked


class PostgresLedgerTables(LedgerAppendQueue):
    """Mixed into `PostgresStore`, which provides the pool and the transaction."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    @uncancellable
    async def _append_batch(self, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
        async def work(db: Db) -> list[LiabilityRecord]:
            return await _insert_linked(db, records)

        return await self._write(work)

    @uncancellable
    async def append_liability_if_absent(self, record: LiabilityRecord) -> bool:
        async def work(db: Db) -> bool:
            # The head's lock first: another process appending the same held record waits.
            await db.execute("SELECT 1 FROM ledger_head WHERE id = 1 FOR UPDATE")
            exists = await db.fetchval(
                "SELECT 1 FROM liability_records WHERE request_id = $1", record.request_id
            )
            if exists is not None:
                return False
            await _insert_linked(db, [record])
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

    async def all_liability_records(self) -> list[LiabilityRecord]:
        await self.drain_appends()
        rows = await self._rows(
            f"SELECT {RECORD_COLUMNS} FROM liability_records ORDER BY seq"  # noqa: S608
        )
        return [record_from(row, as_stored) for row in rows]

    async def chain_head(self) -> str:
        await self.drain_appends()
        rows = await self._rows("SELECT row_hash FROM ledger_head WHERE id = 1")
        return str(rows[0]["row_hash"])

    @uncancellable
    async def save_outage(self, outage: Outage) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO outages (outage_id, scope, started_at, ended_at, reached, "
                "last_failure_at, status_counts, affected, clause) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (outage_id) DO UPDATE "
                "SET ended_at = excluded.ended_at, reached = excluded.reached, "
                "last_failure_at = excluded.last_failure_at, "
                "status_counts = excluded.status_counts, affected = excluded.affected, "
                "clause = excluded.clause",
                outage.outage_id,
                outage.scope,
                outage.started_at,
                outage.ended_at,
                outage.reached,
                outage.last_failure_at,
                json.dumps(dict(outage.status_counts), sort_keys=True),
                json.dumps(dict(outage.affected), sort_keys=True),
                outage.clause.value,
            )

        await self._write(work)

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
                "description) VALUES ($1, $2, $3, $4, $5, $6)",
                incident.incident_id,
                incident.kind.value,
                incident.starts_at,
                incident.ends_at,
                incident.declared_at,
                incident.description,
            )
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

        await self._write(work)

    async def request_counts(self, bank_id: str, month: str) -> tuple[int, int]:
        rows = await self._rows(
            "SELECT COALESCE(sum(requests), 0), COALESCE(sum(failed), 0) FROM request_counts "
            "WHERE bank_id = $1 AND day LIKE $2",
            bank_id,
            f"{month}-%",
        )
        return int(rows[0][0]), int(rows[0][1])
