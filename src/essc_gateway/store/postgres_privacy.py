"""Erasure and disclosure in the PostgreSQL store (the `PrivacyStore` port)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from essc_gateway.evidence.entries import disclosure_entry, erasure_entry
from essc_gateway.privacy.model import (
    Disclosure,
    DisclosureGround,
    ErasedCounts,
    Erasure,
    ErasureJob,
    lookup_versions,
)
from essc_gateway.privacy.ports import UnsettledCheck
from essc_gateway.store.base import CardRecord, ClaimLost, IssueAttemptState
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.postgres_cluster import bump_topic
from essc_gateway.store.postgres_evidence import log_append
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import CARD_COLUMNS, as_stored, card_from, erasure_job_from

log = logging.getLogger(__name__)
R = TypeVar("R")
_UNSETTLED_DRAFTS = (
    "SELECT a.idempotency_key, COALESCE(a.draft_sealed, q.payload_sealed) AS draft "
    "FROM issue_attempts a LEFT JOIN forward_queue q ON q.bank_id = a.bank_id "
    "AND q.idempotency_key = a.idempotency_key WHERE a.bank_id = $1 AND "
    "a.state = ANY($2::text[])"
)
_UNSETTLED = [
    IssueAttemptState.PENDING.value,
    IssueAttemptState.FORWARD_PENDING.value,
    IssueAttemptState.IN_DOUBT.value,
]
HOLDER_TABLES = (
    "cards",
    "holder_keys",
    "holder_links",
    "disclosures",
    "factor_failures",
    "sms_sends",
    "issue_attempts",
    "forward_queue",
)
"""What an erasure deletes from: rewritten by the purge so that no dead copy stays."""


async def erase_rows(db: Db, bank_id: str, tokens: Sequence[str]) -> ErasedCounts:
    """Deletes every row naming the holder under `tokens`, inside the caller's transaction."""
    listed = list(tokens)

    async def delete(sql: str, *params: object) -> int:
        status = await db.execute(sql, *params)
        return int(status.split()[-1])

    live_cards = await db.fetchval(
        "SELECT count(*) FROM cards WHERE bank_id = $1 AND holder_token = ANY($2::text[]) "
        "AND status != 'TERMINATED'",
        bank_id,
        listed,
    )
    # Links from before holder references (salt NULL): their records name the token.
    # The token the record's hash holds is its own column (a LOOKUP rotation moved the
    # link to a newer token, not the record).
    legacy = await db.fetch(
        "SELECT r.holder_token, count(*) FROM holder_links l JOIN liability_records r "
        "ON r.request_id = l.request_id WHERE l.bank_id = $1 AND "
        "l.holder_token = ANY($2::text[]) AND l.salt IS NULL GROUP BY r.holder_token",
        bank_id,
        listed,
    )
    attempts = await delete(
        "DELETE FROM issue_attempts WHERE bank_id = $1 AND essc_id IN (SELECT essc_id FROM "
        "cards WHERE bank_id = $1 AND holder_token = ANY($2::text[]))",
        bank_id,
        listed,
    )
    counted = []
    for table in ("cards", "holder_keys", "holder_links", "disclosures"):
        counted.append(
            await delete(
                f"DELETE FROM {table} WHERE bank_id = $1 AND holder_token = ANY($2::text[])",  # noqa: S608
                bank_id,
                listed,
            )
        )
    cards, keys, links, disclosed = counted
    lockouts = await delete(
        "DELETE FROM factor_failures WHERE holder_token = ANY($1::text[])", listed
    )
    sms = await delete("DELETE FROM sms_sends WHERE holder_token = ANY($1::text[])", listed)
    return ErasedCounts(
        cards,
        keys,
        links,
        attempts + disclosed + lockouts + sms,
        live_cards=int(live_cards),
        records_under_lookup_token=sum(int(r[1]) for r in legacy),
        lookup_versions=lookup_versions(str(r[0]) for r in legacy),
    )


class PostgresPrivacyTables:
    """Mixed into `PostgresStore`: the `PrivacyStore` port."""

    _pool: asyncpg.Pool[asyncpg.Record]

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def unsettled_drafts(self, bank_id: str) -> list[tuple[str, bytes]]:
        rows = await self._rows(_UNSETTLED_DRAFTS, bank_id, _UNSETTLED)
        return [(str(r[0]), bytes(r[1])) for r in rows if r[1] is not None]

    async def erase_holder(
        self,
        bank_id: str,
        tokens: Sequence[str],
        erasure: Callable[[ErasedCounts], Erasure],
        check: UnsettledCheck,
    ) -> Erasure | None:
        async def work(db: Db) -> Erasure | None:
            # New claims and their settling wait until this commits (the lock conflicts with
            # every INSERT, UPDATE and DELETE on the table, not with reads): no issuance slips
            # in between the check and the erasure. Erasures are rare and short.
            await db.execute("LOCK TABLE issue_attempts IN SHARE ROW EXCLUSIVE MODE")
            drafts = await db.fetch(_UNSETTLED_DRAFTS, bank_id, _UNSETTLED)
            check([(str(r[0]), bytes(r[1])) for r in drafts if r[1] is not None])
            # The evidence log's head next (the order every appender keeps): a ledger append
            # under way commits its holder links first, so that the deletes below see them;
            # one after sees this erasure's mark.
            await db.execute("SELECT 1 FROM evidence_head WHERE id = 1 FOR UPDATE")
            counts = await erase_rows(db, bank_id, tokens)
            if not counts.anything:
                return None
            done = erasure(counts)
            await db.execute(
                "INSERT INTO erasure_marks (bank_id, erased_at) VALUES ($1, $2) "
                "ON CONFLICT (bank_id) DO UPDATE SET erased_at = "
                "greatest(erasure_marks.erased_at, excluded.erased_at)",
                bank_id,
                done.at,
            )
            await log_append(db, [erasure_entry(done)])
            await bump_topic(db, SharedTopic.HOLDERS)
            return done

        return await self._write(work)

    async def purge_erased(self) -> bool:
        # Plain VACUUM leaves a deleted tuple's bytes in the page's free space; VACUUM FULL
        # rewrites each table and its indexes into new files. It locks each table while it
        # runs: the purge is a maintenance step (see README), not part of each erasure.
        try:
            async with self._pool.acquire() as connection:
                for table in HOLDER_TABLES:
                    await connection.execute(f"VACUUM FULL {table}")
                await connection.execute("CHECKPOINT")
        except asyncpg.PostgresError as error:  # e.g. a role without the right: logged
            log.warning("erased rows not purged: %s", type(error).__name__)
            return False
        return True

    async def holder_tokens_of_bank(self, bank_id: str, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT holder_token FROM (SELECT holder_token FROM cards WHERE bank_id = $1 "
            "UNION SELECT holder_token FROM holder_keys WHERE bank_id = $1 "
            "UNION SELECT holder_token FROM holder_links WHERE bank_id = $1 "
            "UNION SELECT holder_token FROM disclosures WHERE bank_id = $1) t LIMIT $2",
            bank_id,
            limit,
        )
        return [str(r[0]) for r in rows]

    async def record_disclosure(
        self, disclosure: Disclosure, lookup_token: str, salt: bytes
    ) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO disclosures (disclosure_id, bank_id, holder_token, holder_ref, "
                "at, operator, recipient, ground, reference, fields, salt) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                disclosure.disclosure_id, disclosure.bank_id, lookup_token,
                disclosure.holder_ref, disclosure.at, disclosure.operator, disclosure.recipient,
                disclosure.ground.value, disclosure.reference, json.dumps(list(disclosure.fields)),
                salt,
            )  # fmt: skip
            await log_append(db, [disclosure_entry(disclosure)])

        await self._write(work)

    async def disclosures(self, bank_id: str, tokens: Sequence[str]) -> list[Disclosure]:
        rows = await self._rows(
            "SELECT disclosure_id, holder_ref, at, operator, recipient, ground, reference, "
            "fields FROM disclosures WHERE bank_id = $1 AND holder_token = ANY($2::text[]) "
            "ORDER BY at, disclosure_id",
            bank_id,
            list(tokens),
        )
        return [
            Disclosure(
                disclosure_id=str(r[0]),
                bank_id=bank_id,
                holder_ref=str(r[1]),
                recipient=str(r[4]),
                ground=DisclosureGround(r[5]),
                reference=str(r[6]),
                fields=tuple(json.loads(r[7])),
                operator=str(r[3]),
                at=r[2],
            )
            for r in rows
        ]


class PostgresErasureJobs:
    """Mixed into `PostgresStore`: the `ErasureJobStore` port."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def start_erasure_job(self, job: ErasureJob) -> bool:
        async def work(db: Db) -> bool:
            status = await db.execute(
                "INSERT INTO erasure_jobs (job_id, kind, bank_id, reference, operator, "
                "started_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id) DO NOTHING",
                job.job_id, job.kind.value, job.bank_id, job.reference, job.operator,
                job.started_at,
            )  # fmt: skip
            return bool(status.endswith(" 1"))

        return await self._write(work)

    async def erasure_jobs(self) -> list[ErasureJob]:
        rows = await self._rows("SELECT * FROM erasure_jobs ORDER BY started_at, job_id")
        return [erasure_job_from(r, as_stored) for r in rows]

    async def lease_erasure_job(
        self, job_id: str, holder: str, now: datetime, until: datetime
    ) -> ErasureJob | None:
        async def work(db: Db) -> ErasureJob | None:
            row = await db.fetchrow(
                "UPDATE erasure_jobs SET holder = $1, lease_until = $2 WHERE job_id = $3 AND "
                "finished_at IS NULL AND (holder IS NULL OR holder = $1 OR lease_until < $4) "
                "RETURNING *",
                holder,
                until,
                job_id,
                now,
            )
            return None if row is None else erasure_job_from(row, as_stored)

        return await self._write(work)

    async def erasure_job_progress(
        self, job_id: str, holder: str, erased: int, waiting: int, until: datetime
    ) -> None:
        async def work(db: Db) -> None:
            done = await db.fetchval(
                "UPDATE erasure_jobs SET erased = erased + $1, waiting = $2, lease_until = $3 "
                "WHERE job_id = $4 AND holder = $5 AND finished_at IS NULL RETURNING 1",
                erased,
                waiting,
                until,
                job_id,
                holder,
            )
            if done is None:
                raise ClaimLost("the erasure job is another replica's now")

        await self._write(work)

    async def finish_erasure_job(self, job_id: str, holder: str, now: datetime) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "UPDATE erasure_jobs SET finished_at = $1, holder = NULL, lease_until = NULL "
                "WHERE job_id = $2 AND holder = $3",
                now,
                job_id,
                holder,
            )

        await self._write(work)

    async def retention_tokens(
        self, bank_id: str, terminated_before: datetime, limit: int
    ) -> list[str]:
        rows = await self._rows(
            "SELECT holder_token FROM cards WHERE bank_id = $1 GROUP BY holder_token HAVING "
            "bool_and(status = 'TERMINATED' AND terminated_at IS NOT NULL AND terminated_at < $2) "
            "LIMIT $3",
            bank_id,
            terminated_before,
            limit,
        )
        return [str(r[0]) for r in rows]

    async def guardian_cards(self, bank_id: str, after: str, limit: int) -> list[CardRecord]:
        rows = await self._rows(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE bank_id = $1 "  # noqa: S608
            "AND guardian_sealed IS NOT NULL AND essc_id > $2 ORDER BY essc_id LIMIT $3",
            bank_id,
            after,
            limit,
        )
        return [card_from(r, as_stored) for r in rows]

    async def clear_guardian(self, essc_id: str, erasure: Erasure) -> bool:
        async def work(db: Db) -> bool:
            done = await db.fetchval(
                "UPDATE cards SET guardian_sealed = NULL, guardian_relation = NULL "
                "WHERE essc_id = $1 AND guardian_sealed IS NOT NULL RETURNING 1",
                essc_id,
            )
            if done is None:
                return False
            await log_append(db, [erasure_entry(erasure)])
            return True

        return await self._write(work)
