"""Erasure and disclosure in the SQLite store (the `PrivacyStore` port)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

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
from essc_gateway.store.rows import CARD_COLUMNS, card_from, erasure_job_from
from essc_gateway.store.sqlite_cluster import bump_topic
from essc_gateway.store.sqlite_commit import BatchWriter
from essc_gateway.store.sqlite_evidence import log_append
from essc_gateway.store.sqlite_util import one_row, text_of, time_of, time_or_none

R = TypeVar("R")
_UNSETTLED = tuple(
    state.value
    for state in (
        IssueAttemptState.PENDING,
        IssueAttemptState.FORWARD_PENDING,
        IssueAttemptState.IN_DOUBT,
    )
)
_UNSETTLED_DRAFTS = (
    "SELECT a.idempotency_key, COALESCE(a.draft_sealed, q.payload_sealed) "
    "FROM issue_attempts a LEFT JOIN forward_queue q ON q.bank_id = a.bank_id "
    "AND q.idempotency_key = a.idempotency_key WHERE a.bank_id = ? AND a.state IN (?, ?, ?)"
)
_CHECKPOINT_TRIES = 50
_CHECKPOINT_PAUSE = 0.05


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def erase_rows(db: sqlite3.Connection, bank_id: str, tokens: Sequence[str]) -> ErasedCounts:
    """Deletes every row naming the holder under `tokens`, inside the caller's transaction."""
    marks = _marks(tokens)
    by_holder = (bank_id, *tokens)

    def delete(sql: str, params: Sequence[object]) -> int:
        return db.execute(sql, tuple(params)).rowcount

    live = one_row(
        db,
        f"SELECT count(*) FROM cards WHERE bank_id = ? AND holder_token IN ({marks}) "  # noqa: S608
        "AND status != 'TERMINATED'",
        by_holder,
    )
    live_cards = 0 if live is None else int(live[0])
    # Links from before holder references (salt NULL): their records name the token.
    # The token the record's hash holds is its own column (a LOOKUP rotation moved the
    # link to a newer token, not the record).
    legacy = db.execute(
        "SELECT r.holder_token, count(*) FROM holder_links l JOIN liability_records r "  # noqa: S608
        f"ON r.request_id = l.request_id WHERE l.bank_id = ? AND l.holder_token IN ({marks}) "
        "AND l.salt IS NULL GROUP BY r.holder_token",
        by_holder,
    ).fetchall()
    # The attempts that completed with the holder's cards go first (they refer to them).
    attempts = delete(
        f"DELETE FROM issue_attempts WHERE bank_id = ? AND essc_id IN (SELECT essc_id "  # noqa: S608
        f"FROM cards WHERE bank_id = ? AND holder_token IN ({marks}))",
        (bank_id, *by_holder),
    )
    cards = delete(
        f"DELETE FROM cards WHERE bank_id = ? AND holder_token IN ({marks})",  # noqa: S608
        by_holder,
    )
    keys = delete(
        f"DELETE FROM holder_keys WHERE bank_id = ? AND holder_token IN ({marks})",  # noqa: S608
        by_holder,
    )
    links = delete(
        f"DELETE FROM holder_links WHERE bank_id = ? AND holder_token IN ({marks})",  # noqa: S608
        by_holder,
    )
    disclosed = delete(
        f"DELETE FROM disclosures WHERE bank_id = ? AND holder_token IN ({marks})",  # noqa: S608
        by_holder,
    )
    # Lockouts and SMS throttles are keyed by the token alone (a token is one bank's).
    lockouts = delete(f"DELETE FROM factor_failures WHERE holder_token IN ({marks})", tokens)  # noqa: S608
    sms = delete(f"DELETE FROM sms_sends WHERE holder_token IN ({marks})", tokens)  # noqa: S608
    return ErasedCounts(
        cards,
        keys,
        links,
        attempts + disclosed + lockouts + sms,
        live_cards=live_cards,
        records_under_lookup_token=sum(int(n) for _, n in legacy),
        lookup_versions=lookup_versions(str(token) for token, _ in legacy),
    )


class SqlitePrivacyTables:
    """Mixed into `SqliteStore`: the `PrivacyStore` port."""

    _writer: BatchWriter

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def unsettled_drafts(self, bank_id: str) -> list[tuple[str, bytes]]:
        rows = await self._rows(_UNSETTLED_DRAFTS, (bank_id, *_UNSETTLED))
        return [(str(r[0]), bytes(r[1])) for r in rows if r[1] is not None]

    async def erase_holder(
        self,
        bank_id: str,
        tokens: Sequence[str],
        erasure: Callable[[ErasedCounts], Erasure],
        check: UnsettledCheck,
    ) -> Erasure | None:
        def work(db: sqlite3.Connection) -> Erasure | None:
            # Inside the write transaction (BEGIN IMMEDIATE): no claim slips in meanwhile.
            drafts = db.execute(_UNSETTLED_DRAFTS, (bank_id, *_UNSETTLED)).fetchall()
            check([(str(r[0]), bytes(r[1])) for r in drafts if r[1] is not None])
            counts = erase_rows(db, bank_id, tokens)
            if not counts.anything:
                return None
            done = erasure(counts)
            db.execute(
                "INSERT INTO erasure_marks (bank_id, erased_at) VALUES (?, ?) "
                "ON CONFLICT (bank_id) DO UPDATE SET erased_at = "
                "max(erased_at, excluded.erased_at)",
                (bank_id, text_of(done.at)),
            )
            log_append(db, [erasure_entry(done)])
            bump_topic(db, SharedTopic.HOLDERS)
            return done

        return await self._write(work)

    async def purge_erased(self) -> bool:
        # A reader in the middle of a query keeps the WAL from being emptied: a moment later
        # it is done (reads here take milliseconds).
        for _ in range(_CHECKPOINT_TRIES):
            if await self._writer.checkpoint_and_truncate():
                return True
            await asyncio.sleep(_CHECKPOINT_PAUSE)
        return False

    async def holder_tokens_of_bank(self, bank_id: str, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT holder_token FROM (SELECT holder_token FROM cards WHERE bank_id = ?1 "
            "UNION SELECT holder_token FROM holder_keys WHERE bank_id = ?1 "
            "UNION SELECT holder_token FROM holder_links WHERE bank_id = ?1 "
            "UNION SELECT holder_token FROM disclosures WHERE bank_id = ?1) LIMIT ?2",
            (bank_id, limit),
        )
        return [str(r[0]) for r in rows]

    async def record_disclosure(
        self, disclosure: Disclosure, lookup_token: str, salt: bytes
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO disclosures (disclosure_id, bank_id, holder_token, holder_ref, at, "
                "operator, recipient, ground, reference, fields, salt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    disclosure.disclosure_id, disclosure.bank_id, lookup_token,
                    disclosure.holder_ref, text_of(disclosure.at), disclosure.operator,
                    disclosure.recipient, disclosure.ground.value, disclosure.reference,
                    json.dumps(list(disclosure.fields)), salt,
                ),
            )  # fmt: skip
            log_append(db, [disclosure_entry(disclosure)])

        await self._write(work)

    async def disclosures(self, bank_id: str, tokens: Sequence[str]) -> list[Disclosure]:
        rows = await self._rows(
            "SELECT disclosure_id, holder_ref, at, operator, recipient, ground, "  # noqa: S608
            f"reference, fields FROM disclosures WHERE bank_id = ? AND holder_token IN "
            f"({_marks(tokens)}) ORDER BY at, disclosure_id",
            (bank_id, *tokens),
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
                at=time_of(r[2]),
            )
            for r in rows
        ]


class SqliteErasureJobs:
    """Mixed into `SqliteStore`: the `ErasureJobStore` port."""

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def start_erasure_job(self, job: ErasureJob) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT INTO erasure_jobs (job_id, kind, bank_id, reference, operator, "
                "started_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                (
                    job.job_id, job.kind.value, job.bank_id, job.reference, job.operator,
                    text_of(job.started_at),
                ),
            )  # fmt: skip
            return cursor.rowcount == 1

        return await self._write(work)

    async def erasure_jobs(self) -> list[ErasureJob]:
        rows = await self._rows("SELECT * FROM erasure_jobs ORDER BY started_at, job_id", ())
        return [erasure_job_from(r, time_or_none) for r in rows]

    async def lease_erasure_job(
        self, job_id: str, holder: str, now: datetime, until: datetime
    ) -> ErasureJob | None:
        def work(db: sqlite3.Connection) -> ErasureJob | None:
            cursor = db.execute(
                "UPDATE erasure_jobs SET holder = ?, lease_until = ? WHERE job_id = ? AND "
                "finished_at IS NULL AND (holder IS NULL OR holder = ? OR lease_until < ?)",
                (holder, text_of(until), job_id, holder, text_of(now)),
            )
            if cursor.rowcount != 1:
                return None
            row = one_row(db, "SELECT * FROM erasure_jobs WHERE job_id = ?", (job_id,))
            return None if row is None else erasure_job_from(row, time_or_none)

        return await self._write(work)

    async def erasure_job_progress(
        self, job_id: str, holder: str, erased: int, waiting: int, until: datetime
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "UPDATE erasure_jobs SET erased = erased + ?, waiting = ?, lease_until = ? "
                "WHERE job_id = ? AND holder = ? AND finished_at IS NULL",
                (erased, waiting, text_of(until), job_id, holder),
            )
            if cursor.rowcount != 1:
                raise ClaimLost("the erasure job is another replica's now")

        await self._write(work)

    async def finish_erasure_job(self, job_id: str, holder: str, now: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE erasure_jobs SET finished_at = ?, holder = NULL, lease_until = NULL "
                "WHERE job_id = ? AND holder = ?",
                (text_of(now), job_id, holder),
            )

        await self._write(work)

    async def retention_tokens(
        self, bank_id: str, terminated_before: datetime, limit: int
    ) -> list[str]:
        rows = await self._rows(
            "SELECT holder_token FROM cards WHERE bank_id = ? GROUP BY holder_token HAVING "
            "sum(CASE WHEN status = 'TERMINATED' AND terminated_at < ? THEN 0 ELSE 1 END) = 0 "
            "LIMIT ?",
            (bank_id, text_of(terminated_before), limit),
        )
        return [str(r[0]) for r in rows]

    async def guardian_cards(self, bank_id: str, after: str, limit: int) -> list[CardRecord]:
        rows = await self._rows(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE bank_id = ? "  # noqa: S608
            "AND guardian_sealed IS NOT NULL AND essc_id > ? ORDER BY essc_id LIMIT ?",
            (bank_id, after, limit),
        )
        return [card_from(r, time_or_none) for r in rows]

    async def clear_guardian(self, essc_id: str, erasure: Erasure) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE cards SET guardian_sealed = NULL, guardian_relation = NULL "
                "WHERE essc_id = ? AND guardian_sealed IS NOT NULL",
                (essc_id,),
            )
            if cursor.rowcount != 1:
                return False
            log_append(db, [erasure_entry(erasure)])
            return True

        return await self._write(work)
