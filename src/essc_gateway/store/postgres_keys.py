"""The key hierarchy's table in the PostgreSQL store: the `KeyStore` port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from essc_gateway.evidence.entries import key_event_entry
from essc_gateway.keys.model import (
    CardReseal,
    HolderKeyMove,
    KeyAction,
    KeyActionKind,
    KeyChange,
    KeyEvent,
    KeyJob,
    KeyPurpose,
    KeyState,
    KeyVersion,
    LookupMove,
    WrappedHolderKey,
)
from essc_gateway.store.base import CardRecord, ClaimLost, KeyVersionTaken
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.postgres_cluster import bump_topic
from essc_gateway.store.postgres_evidence import log_append
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import (
    CARD_COLUMNS,
    as_stored,
    card_from,
    holder_key_from,
    key_action_from,
    key_job_from,
    key_version_from,
)
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")


class PostgresKeyTables:
    """Mixed into `PostgresStore`."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def key_versions(self) -> list[KeyVersion]:
        rows = await self._rows("SELECT * FROM managed_keys ORDER BY bank_id, purpose, version")
        return [key_version_from(r, as_stored) for r in rows]

    async def add_key_versions(
        self, keys: Sequence[KeyVersion], events: Sequence[KeyEvent]
    ) -> bool:
        try:
            await self.change_keys(KeyChange(new=tuple(keys), events=tuple(events)))
        except KeyVersionTaken:
            return False
        return True

    @uncancellable
    async def change_keys(self, change: KeyChange) -> None:
        async def work(db: Db) -> None:
            try:
                await db.executemany(
                    "INSERT INTO managed_keys (bank_id, purpose, version, suite, wrapped, "
                    "parent_version, state, created_at, created_by) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    [
                        (
                            k.bank_id, k.purpose.value, k.version, int(k.suite), k.wrapped,
                            k.parent_version, k.state.value, k.created_at, k.created_by,
                        )
                        for k in change.new
                    ],
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise KeyVersionTaken from None
            await db.executemany(
                "UPDATE managed_keys SET wrapped = $1, parent_version = $2 "
                "WHERE bank_id = $3 AND purpose = $4 AND version = $5",
                [
                    (r.wrapped, r.parent_version, r.bank_id, r.purpose.value, r.version)
                    for r in change.rewraps
                ],
            )
            await db.executemany(
                "UPDATE managed_keys SET state = $1 WHERE bank_id = $2 AND purpose = $3 "
                "AND version = $4",
                [(c.state.value, c.bank_id, c.purpose.value, c.version) for c in change.states],
            )
            await log_append(db, [key_event_entry(e) for e in change.events])
            await bump_topic(db, SharedTopic.KEYS)

        await self._write(work)

    async def sealed_under(self, bank_id: str, purpose: KeyPurpose, version: int) -> int:
        if purpose is KeyPurpose.DATA:
            marker = bytes([0xE5]), version.to_bytes(2, "big")  # format; version in bytes 3-4
            rows = await self._rows(
                "SELECT (SELECT count(*) FROM holder_keys WHERE bank_id = $1 AND "
                "data_version = $2) + (SELECT count(*) FROM issue_attempts WHERE bank_id = $1 "
                "AND substring(draft_sealed from 1 for 1) = $3 AND "
                "substring(draft_sealed from 3 for 2) = $4) + (SELECT count(*) FROM "
                "forward_queue WHERE bank_id = $1 AND substring(payload_sealed from 1 for 1) "
                "= $3 AND substring(payload_sealed from 3 for 2) = $4)",
                bank_id,
                version,
                *marker,
            )
            return int(rows[0][0])
        if purpose is KeyPurpose.LOOKUP:
            rows = await self._rows(
                "SELECT (SELECT count(*) FROM cards WHERE bank_id = $1 AND holder_token "
                "LIKE $2) + (SELECT count(*) FROM holder_keys WHERE bank_id = $1 AND "
                "holder_token LIKE $2)",
                bank_id,
                f"{version}.%",
            )
            return int(rows[0][0])
        return 0

    async def holds_cards(self) -> bool:
        rows = await self._rows("SELECT EXISTS (SELECT 1 FROM cards)")
        return bool(rows[0][0])

    @uncancellable
    async def log_key_events(self, events: Sequence[KeyEvent]) -> None:
        async def work(db: Db) -> None:
            await log_append(db, [key_event_entry(e) for e in events])

        await self._write(work)

    async def holder_key(self, bank_id: str, holder_token: str) -> WrappedHolderKey | None:
        rows = await self._rows(
            "SELECT * FROM holder_keys WHERE bank_id = $1 AND holder_token = $2",
            bank_id,
            holder_token,
        )
        return holder_key_from(rows[0], as_stored) if rows else None


class PostgresKeyJobs:
    """Mixed into `PostgresStore`: the holder keys' moves to a new DATA version."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def cards_for_holder(self, bank_id: str, holder_token: str) -> list[CardRecord]:
        rows = await self._rows(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE bank_id = $1 AND holder_token = $2",  # noqa: S608
            bank_id,
            holder_token,
        )
        return [card_from(r, as_stored) for r in rows]

    @uncancellable
    async def start_key_job(self, job: KeyJob) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO key_jobs (job_id, bank_id, target_version, rekey, done, total, "
                "started_at, purpose) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (job_id) DO NOTHING",
                job.job_id, job.bank_id, job.target_version, job.rekey, job.done, job.total,
                job.started_at, job.purpose.value,
            )  # fmt: skip

        await self._write(work)

    async def key_jobs(self) -> list[KeyJob]:
        rows = await self._rows("SELECT * FROM key_jobs ORDER BY started_at")
        return [key_job_from(r, as_stored) for r in rows]

    @uncancellable
    async def lease_key_job(
        self, job_id: str, holder: str, now: datetime, until: datetime
    ) -> KeyJob | None:
        async def work(db: Db) -> KeyJob | None:
            row = await db.fetchrow(
                "UPDATE key_jobs SET holder = $1, lease_until = $2 WHERE job_id = $3 AND "
                "finished_at IS NULL AND (holder IS NULL OR holder = $1 OR lease_until < $4) "
                "RETURNING *",
                holder,
                until,
                job_id,
                now,
            )
            return None if row is None else key_job_from(row, as_stored)

        return await self._write(work)

    async def holder_keys_to_move(
        self, bank_id: str, target_version: int, limit: int
    ) -> list[WrappedHolderKey]:
        rows = await self._rows(
            "SELECT * FROM holder_keys WHERE bank_id = $1 AND data_version != $2 LIMIT $3",
            bank_id,
            target_version,
            limit,
        )
        return [holder_key_from(r, as_stored) for r in rows]

    async def count_holder_keys_to_move(self, bank_id: str, target_version: int) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM holder_keys WHERE bank_id = $1 AND data_version != $2",
            bank_id,
            target_version,
        )
        return int(rows[0][0])

    @uncancellable
    async def move_holder_keys(
        self, job_id: str, holder: str, moves: Sequence[HolderKeyMove], until: datetime
    ) -> int:
        async def work(db: Db) -> int:
            await _renew_lease(db, job_id, holder, until)
            moved = 0
            for move in moves:
                old, new = move.old, move.new
                if new.key_id != old.key_id and not await _same_cards(
                    db, old.bank_id, old.holder_token, old.key_id, move.cards
                ):
                    continue  # a card came meanwhile: the next batch seals it too
                done = await db.fetchval(
                    "UPDATE holder_keys SET key_id = $1, data_version = $2, wrapped = $3 "
                    "WHERE bank_id = $4 AND holder_token = $5 AND key_id = $6 AND "
                    "data_version = $7 RETURNING 1",
                    new.key_id, new.data_version, new.wrapped, old.bank_id,
                    old.holder_token, old.key_id, old.data_version,
                )  # fmt: skip
                if done is None:
                    continue  # moved already (a job resumed after a kill), or erased
                moved += 1
                await _reseal_cards(db, move.cards)
            await db.execute(
                "UPDATE key_jobs SET done = done + $1 WHERE job_id = $2", moved, job_id
            )
            return moved

        return await self._write(work)

    async def holder_tokens_to_move(self, bank_id: str, version: int, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT DISTINCT holder_token FROM cards WHERE bank_id = $1 AND holder_token "
            "NOT LIKE $2 LIMIT $3",
            bank_id,
            f"{version}.%",
            limit,
        )
        return [str(r[0]) for r in rows]

    async def count_holder_tokens_to_move(self, bank_id: str, version: int) -> int:
        rows = await self._rows(
            "SELECT count(DISTINCT holder_token) FROM cards WHERE bank_id = $1 AND "
            "holder_token NOT LIKE $2",
            bank_id,
            f"{version}.%",
        )
        return int(rows[0][0])

    @uncancellable
    async def move_lookup_tokens(
        self, job_id: str, holder: str, moves: Sequence[LookupMove], until: datetime
    ) -> int:
        async def work(db: Db) -> int:
            await _renew_lease(db, job_id, holder, until)
            moved = 0
            for m in moves:
                if m.merges and not await _same_cards(db, m.bank_id, m.old_token, None, m.reseals):
                    continue  # a card came meanwhile: the next batch seals it too
                cards = await db.fetchval(
                    "WITH c AS (UPDATE cards SET holder_token = $1 WHERE bank_id = $2 AND "
                    "holder_token = $3 RETURNING 1) SELECT count(*) FROM c",
                    m.new_token,
                    m.bank_id,
                    m.old_token,
                )
                if not cards:
                    continue  # moved already (a job resumed after a kill), or erased
                moved += 1
                if m.merges:  # the older cards now under the key the new token has
                    await _reseal_cards(db, m.reseals)
                    await db.execute(
                        "DELETE FROM holder_keys WHERE bank_id = $1 AND holder_token = $2",
                        m.bank_id,
                        m.old_token,
                    )
                else:
                    await db.execute(
                        "UPDATE holder_keys SET holder_token = $1 WHERE bank_id = $2 AND "
                        "holder_token = $3",
                        m.new_token,
                        m.bank_id,
                        m.old_token,
                    )
                # Lockouts and SMS throttles follow the holder (the newer row wins).
                await db.execute(
                    "DELETE FROM factor_failures WHERE holder_token = $1 AND EXISTS "
                    "(SELECT 1 FROM factor_failures WHERE holder_token = $2)",
                    m.old_token,
                    m.new_token,
                )
                await db.execute(
                    "UPDATE factor_failures SET holder_token = $1 WHERE holder_token = $2",
                    m.new_token,
                    m.old_token,
                )
                await db.execute(
                    "UPDATE sms_sends SET holder_token = $1 WHERE holder_token = $2",
                    m.new_token,
                    m.old_token,
                )
                for table in ("holder_links", "disclosures"):  # still found by the holder
                    await db.execute(
                        f"UPDATE {table} SET holder_token = $1 WHERE bank_id = $2 AND "  # noqa: S608
                        "holder_token = $3",
                        m.new_token,
                        m.bank_id,
                        m.old_token,
                    )
            await db.execute(
                "UPDATE key_jobs SET done = done + $1 WHERE job_id = $2", moved, job_id
            )
            return moved

        return await self._write(work)

    @uncancellable
    async def finish_key_job(self, job_id: str, holder: str, now: datetime) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "UPDATE key_jobs SET finished_at = $1, holder = NULL, lease_until = NULL "
                "WHERE job_id = $2 AND holder = $3",
                now,
                job_id,
                holder,
            )

        await self._write(work)

    @uncancellable
    async def add_key_action(self, action: KeyAction, event: KeyEvent) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO key_actions (action_id, kind, bank_id, purpose, version, "
                "recipient_public_key, requested_by, requested_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                action.action_id, action.kind.value, action.bank_id, action.purpose.value,
                action.version, action.recipient_public_key, action.requested_by,
                action.requested_at,
            )  # fmt: skip
            await log_append(db, [key_event_entry(event)])

        await self._write(work)

    async def key_action(self, action_id: str) -> KeyAction | None:
        rows = await self._rows("SELECT * FROM key_actions WHERE action_id = $1", action_id)
        return key_action_from(rows[0], as_stored) if rows else None

    @uncancellable
    async def approve_key_action(
        self, action: KeyAction, approved_by: str, at: datetime, events: Sequence[KeyEvent]
    ) -> None:
        async def work(db: Db) -> None:
            done = await db.fetchval(
                "UPDATE key_actions SET approved_by = $1, approved_at = $2 "
                "WHERE action_id = $3 AND approved_by IS NULL RETURNING 1",
                approved_by,
                at,
                action.action_id,
            )
            if done is None:
                raise ClaimLost("the action was approved already")
            if action.kind is KeyActionKind.DESTROY:
                await db.execute(
                    "UPDATE managed_keys SET wrapped = '\\x'::bytea, state = $1 "
                    "WHERE bank_id = $2 AND purpose = $3 AND version = $4",
                    KeyState.DESTROYED.value,
                    action.bank_id,
                    action.purpose.value,
                    action.version,
                )
                await bump_topic(db, SharedTopic.KEYS)
            await log_append(db, [key_event_entry(e) for e in events])

        await self._write(work)


async def _same_cards(
    db: Db, bank_id: str, holder_token: str, key_id: str | None, reseals: Sequence[CardReseal]
) -> bool:
    """Whether the holder's cards are exactly those sealed again: a card stored after the
    job read them would stay under a key the move deletes. The holder key's row is locked
    first: an Issue storing a card under it holds it FOR SHARE until it commits, so the
    cards read next include that card."""
    locked = await db.fetchval(
        "SELECT 1 FROM holder_keys WHERE bank_id = $1 AND holder_token = $2 "
        "AND ($3::text IS NULL OR key_id = $3) FOR UPDATE",
        bank_id,
        holder_token,
        key_id,
    )
    if locked is None:
        return False
    rows = await db.fetch(
        "SELECT essc_id FROM cards WHERE bank_id = $1 AND holder_token = $2",
        bank_id,
        holder_token,
    )
    return {str(r[0]) for r in rows} == {c.essc_id for c in reseals}


async def _renew_lease(db: Db, job_id: str, holder: str, until: datetime) -> None:
    held = await db.fetchval(
        "UPDATE key_jobs SET lease_until = $1 WHERE job_id = $2 AND holder = $3 RETURNING 1",
        until,
        job_id,
        holder,
    )
    if held is None:
        raise ClaimLost("the key job is another replica's now")


async def _reseal_cards(db: Db, reseals: Sequence[CardReseal]) -> None:
    if not reseals:
        return
    await db.executemany(
        "UPDATE cards SET name_sealed = $1, id_number_sealed = $2, phone_sealed = $3, "
        "card_number_sealed = $4, guardian_sealed = $5 WHERE essc_id = $6",
        [
            (
                c.name_sealed, c.id_number_sealed, c.phone_sealed, c.card_number_sealed,
                c.guardian_sealed, c.essc_id,
            )
            for c in reseals
        ],
    )  # fmt: skip
