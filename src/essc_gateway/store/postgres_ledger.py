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
from essc_gateway.liability.model import Amendment, Incident, LiabilityRecord, Outage
from essc_gateway.store.append_queue import LedgerAppendQueue
from essc_gateway.store.base import DuplicateRecord
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.postgres_cluster import bump_topic
from essc_gateway.store.postgres_evidence import (
    LOG_WRITE,
    log_append,
    log_write_args,
    prepare_append,
)
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import (
    RECORD_SELECT,
    IndexRow,
    amendment_from,
    amendment_values,
    as_stored,
    incident_from_row,
    index_row_from,
    outage_from,
    record_from,
)
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")


# The records' rows in the statement that writes their log entries (after `LOG_WRITE`'s
# $1..$9), numbered after the last on the ledger's head: one round trip for the batch.
_INSERT_RECORDS = (
    f"WITH {LOG_WRITE}, "  # noqa: S608 - constants
    "numbered AS (UPDATE ledger_head SET seq = seq + $10 WHERE id = 1 RETURNING seq) "
    "INSERT INTO liability_records (seq, request_id, trace_id, bank_id, rpc, at, "
    "status_code, reason, clause, evidence, holder_token, arrived_at, attempts, log_index, "
    "prev_hash, row_hash) "
    "SELECT numbered.seq - $10 + r.n, r.request_id, '', r.bank_id, '', r.at, '', '', '', "
    "'{}', r.holder_token, r.arrived_at, '[]', r.log_index, '', '' FROM numbered, "
    "unnest($11::text[], $12::text[], $13::timestamptz[], $14::text[], $15::timestamptz[], "
    "$16::bigint[]) WITH ORDINALITY AS r (request_id, bank_id, at, holder_token, "
    "arrived_at, log_index, n) RETURNING request_id, seq"
)


async def insert_logged(db: Db, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
    """Appends `records` to the evidence log (its head locked until the transaction ends)
    and inserts the rows that index them, numbered after the last. The row holds what
    queries select on; the record is its log entry."""
    appended = await prepare_append(db, [record_entry(r) for r in records])
    try:
        numbered = await db.fetch(
            _INSERT_RECORDS,
            *log_write_args(appended),
            len(records),
            [r.request_id for r in records],
            [r.bank_id for r in records],
            [r.at for r in records],
            [r.holder_token for r in records],
            [r.arrival for r in records],
            [e.index for e in appended.entries],
        )
    except asyncpg.UniqueViolationError as violation:
        if "request_id" not in (violation.constraint_name or ""):
            raise
        raise DuplicateRecord("a liability record with this request id exists") from None
    linked = [r for r in records if r.holder_link is not None]
    if linked:
        # A record that arrived before its bank's last erasure gets no link: appended late
        # (or held through an outage), it must not lead back to a holder erased meanwhile.
        await db.execute(
            "INSERT INTO holder_links (request_id, bank_id, holder_token, salt) "
            "SELECT l.request_id, l.bank_id, l.holder_token, l.salt FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::bytea[], $5::timestamptz[]) AS l (request_id, "
            "bank_id, holder_token, salt, arrived_at) WHERE NOT EXISTS (SELECT 1 FROM "
            "erasure_marks m WHERE m.bank_id = l.bank_id AND m.erased_at >= l.arrived_at)",
            [r.request_id for r in linked],
            [r.bank_id for r in linked],
            [r.holder_link.lookup_token for r in linked if r.holder_link is not None],
            [r.holder_link.salt for r in linked if r.holder_link is not None],
            [r.arrival for r in linked],
        )
    seqs = {row["request_id"]: int(row["seq"]) for row in numbered}
    return [
        r.placed(seqs[r.request_id], e.index)
        for r, e in zip(records, appended.entries, strict=True)
    ]


class PostgresLedgerTables(LedgerAppendQueue):
    """Mixed into `PostgresStore`, which provides the pool and the transaction."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    @uncancellable
    async def _append_batch(self, records: list[LiabilityRecord]) -> list[LiabilityRecord]:
        async def work(db: Db) -> list[LiabilityRecord]:
            return await insert_logged(db, records)

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
            await insert_logged(db, [record])
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
            # The holder's lookup token: through the links (the record holds a commitment).
            f"{RECORD_SELECT} "  # noqa: S608 - constants
            "WHERE at >= $1 AND at < $2 AND ($3::text IS NULL OR bank_id = $3) "
            "AND ($4::text IS NULL OR request_id IN (SELECT l.request_id FROM holder_links l "
            "WHERE l.bank_id = liability_records.bank_id AND l.holder_token = $4)) "
            "ORDER BY seq",
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
            f"{RECORD_SELECT} WHERE arrived_at >= $1 AND arrived_at < $2 ORDER BY seq",
            since,
            until,
        )
        return [record_from(row, as_stored) for row in rows]

    async def liability_index(self, request_ids: Sequence[str]) -> list[IndexRow]:
        await self.drain_appends()
        rows = await self._rows(
            "SELECT * FROM liability_records WHERE request_id = ANY($1::text[])",
            list(request_ids),
        )
        return [index_row_from(row, as_stored) for row in rows]

    async def liability_record_count(self, below_index: int) -> int:
        await self.drain_appends()
        rows = await self._rows(
            "SELECT count(*) FROM liability_records WHERE log_index IS NULL OR log_index < $1",
            below_index,
        )
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
            # The log head first: replicas amending for one incident take turns, and the
            # second finds the first's amendments; then one statement each, whatever the
            # number of records.
            await db.execute("SELECT 1 FROM evidence_head WHERE id = 1 FOR UPDATE")
            done = {
                (row["request_id"], row["incident_id"])
                for row in await db.fetch(
                    "SELECT request_id, incident_id FROM liability_amendments "
                    "WHERE request_id = ANY($1::text[])",
                    [a.request_id for a in amendments],
                )
            }
            fresh = [a for a in amendments if (a.request_id, a.incident_id) not in done]
            if not fresh:
                return []
            logged = await log_append(db, [amendment_entry(a) for a in fresh])
            written = [
                replace(a, log_index=entry.index) for a, entry in zip(fresh, logged, strict=True)
            ]
            await db.executemany(
                "INSERT INTO liability_amendments (amendment_id, request_id, incident_id, "
                "clause, previous_clause, cause, declared_by, declared_at, amended_at, "
                "log_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [amendment_values(a, as_stored) for a in written],
            )
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
        return [incident_from_row(r, as_stored) for r in rows]

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
