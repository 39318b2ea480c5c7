"""The key hierarchy's table in the SQLite store: the `KeyStore` port."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

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
from essc_gateway.store.base import CardRecord, ClaimLost, HolderKeyTaken, KeyVersionTaken
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.rows import (
    CARD_COLUMNS,
    card_from,
    holder_key_from,
    key_action_from,
    key_job_from,
    key_version_from,
)
from essc_gateway.store.sqlite_cluster import bump_topic
from essc_gateway.store.sqlite_evidence import log_append
from essc_gateway.store.sqlite_util import one_row, text_of, time_or_none, uncancellable

R = TypeVar("R")


class SqliteKeyTables:
    """Mixed into `SqliteStore`."""

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def key_versions(self) -> list[KeyVersion]:
        rows = await self._rows("SELECT * FROM managed_keys ORDER BY bank_id, purpose, version", ())
        return [key_version_from(r, time_or_none) for r in rows]

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
        def work(db: sqlite3.Connection) -> None:
            try:
                db.executemany(
                    "INSERT INTO managed_keys (bank_id, purpose, version, suite, wrapped, "
                    "parent_version, state, created_at, created_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            k.bank_id, k.purpose.value, k.version, int(k.suite), k.wrapped,
                            k.parent_version, k.state.value, text_of(k.created_at), k.created_by,
                        )
                        for k in change.new
                    ],
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise KeyVersionTaken from None
            db.executemany(
                "UPDATE managed_keys SET wrapped = ?, parent_version = ? "
                "WHERE bank_id = ? AND purpose = ? AND version = ?",
                [
                    (r.wrapped, r.parent_version, r.bank_id, r.purpose.value, r.version)
                    for r in change.rewraps
                ],
            )
            db.executemany(
                "UPDATE managed_keys SET state = ? WHERE bank_id = ? AND purpose = ? "
                "AND version = ?",
                [(c.state.value, c.bank_id, c.purpose.value, c.version) for c in change.states],
            )
            log_append(db, [key_event_entry(e) for e in change.events])
            bump_topic(db, SharedTopic.KEYS)

        await self._write(work)

    async def sealed_under(self, bank_id: str, purpose: KeyPurpose, version: int) -> int:
        if purpose is KeyPurpose.DATA:
            header = bytes([0xE5])  # the sealed format; its version in bytes 3-4
            marker = version.to_bytes(2, "big")
            sql = (
                "SELECT (SELECT count(*) FROM holder_keys WHERE bank_id = ?1 AND "
                "data_version = ?2) + (SELECT count(*) FROM issue_attempts WHERE bank_id = ?1 "
                "AND draft_sealed IS NOT NULL AND substr(draft_sealed, 1, 1) = ?3 AND "
                "substr(draft_sealed, 3, 2) = ?4) + (SELECT count(*) FROM forward_queue "
                "WHERE bank_id = ?1 AND substr(payload_sealed, 1, 1) = ?3 AND "
                "substr(payload_sealed, 3, 2) = ?4)"
            )
            rows = await self._rows(sql, (bank_id, version, header, marker))
            return int(rows[0][0])
        if purpose is KeyPurpose.LOOKUP:
            prefix = f"{version}.%"
            rows = await self._rows(
                "SELECT (SELECT count(*) FROM cards WHERE bank_id = ?1 AND holder_token "
                "LIKE ?2) + (SELECT count(*) FROM holder_keys WHERE bank_id = ?1 AND "
                "holder_token LIKE ?2)",
                (bank_id, prefix),
            )
            return int(rows[0][0])
        return 0

    async def holds_cards(self) -> bool:
        rows = await self._rows("SELECT EXISTS (SELECT 1 FROM cards)", ())
        return bool(rows[0][0])

    @uncancellable
    async def log_key_events(self, events: Sequence[KeyEvent]) -> None:
        def work(db: sqlite3.Connection) -> None:
            log_append(db, [key_event_entry(e) for e in events])

        await self._write(work)

    async def holder_key(self, bank_id: str, holder_token: str) -> WrappedHolderKey | None:
        rows = await self._rows(
            "SELECT * FROM holder_keys WHERE bank_id = ? AND holder_token = ?",
            (bank_id, holder_token),
        )
        return holder_key_from(rows[0], time_or_none) if rows else None


def require_holder_key(
    db: sqlite3.Connection, bank_id: str, holder_token: str, key_id: str
) -> None:
    """In the card's transaction: the holder's stored key is still `key_id` (a key job may
    have replaced it since it was read). Raises HolderKeyTaken otherwise."""
    row = db.execute(
        "SELECT 1 FROM holder_keys WHERE bank_id = ? AND holder_token = ? AND key_id = ?",
        (bank_id, holder_token, key_id),
    ).fetchone()
    if row is None:
        raise HolderKeyTaken("the holder's key was replaced: seal under the stored one")


def insert_holder_key(db: sqlite3.Connection, key: WrappedHolderKey) -> None:
    """In the card's transaction. Raises HolderKeyTaken when the holder has one already."""
    try:
        db.execute(
            "INSERT INTO holder_keys (bank_id, holder_token, key_id, data_version, wrapped, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                key.bank_id,
                key.holder_token,
                key.key_id,
                key.data_version,
                key.wrapped,
                text_of(key.created_at),
            ),
        )
    except sqlite3.IntegrityError:
        raise HolderKeyTaken("the holder has a key already") from None


class SqliteKeyJobs:
    """Mixed into `SqliteStore`: the holder keys' moves to a new DATA version."""

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def cards_for_holder(self, bank_id: str, holder_token: str) -> list[CardRecord]:
        rows = await self._rows(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE bank_id = ? AND holder_token = ?",  # noqa: S608
            (bank_id, holder_token),
        )
        return [card_from(r, time_or_none) for r in rows]

    @uncancellable
    async def start_key_job(self, job: KeyJob) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO key_jobs (job_id, bank_id, target_version, rekey, done, total, "
                "started_at, purpose) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO NOTHING",
                (
                    job.job_id, job.bank_id, job.target_version, int(job.rekey), job.done,
                    job.total, text_of(job.started_at), job.purpose.value,
                ),
            )  # fmt: skip

        await self._write(work)

    async def key_jobs(self) -> list[KeyJob]:
        rows = await self._rows("SELECT * FROM key_jobs ORDER BY started_at", ())
        return [key_job_from(r, time_or_none) for r in rows]

    @uncancellable
    async def lease_key_job(
        self, job_id: str, holder: str, now: datetime, until: datetime
    ) -> KeyJob | None:
        def work(db: sqlite3.Connection) -> KeyJob | None:
            cursor = db.execute(
                "UPDATE key_jobs SET holder = ?, lease_until = ? WHERE job_id = ? AND "
                "finished_at IS NULL AND (holder IS NULL OR holder = ? OR lease_until < ?)",
                (holder, text_of(until), job_id, holder, text_of(now)),
            )
            if cursor.rowcount != 1:
                return None
            row = one_row(db, "SELECT * FROM key_jobs WHERE job_id = ?", (job_id,))
            return None if row is None else key_job_from(row, time_or_none)

        return await self._write(work)

    async def holder_keys_to_move(
        self, bank_id: str, target_version: int, limit: int
    ) -> list[WrappedHolderKey]:
        rows = await self._rows(
            "SELECT * FROM holder_keys WHERE bank_id = ? AND data_version != ? LIMIT ?",
            (bank_id, target_version, limit),
        )
        return [holder_key_from(r, time_or_none) for r in rows]

    async def count_holder_keys_to_move(self, bank_id: str, target_version: int) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM holder_keys WHERE bank_id = ? AND data_version != ?",
            (bank_id, target_version),
        )
        return int(rows[0][0])

    @uncancellable
    async def move_holder_keys(
        self, job_id: str, holder: str, moves: Sequence[HolderKeyMove], until: datetime
    ) -> int:
        def work(db: sqlite3.Connection) -> int:
            _renew_lease(db, job_id, holder, until)
            moved = 0
            for move in moves:
                old, new = move.old, move.new
                if new.key_id != old.key_id and not _same_cards(
                    db, old.bank_id, old.holder_token, move.cards
                ):
                    continue  # a card came meanwhile: the next batch seals it too
                cursor = db.execute(
                    "UPDATE holder_keys SET key_id = ?, data_version = ?, wrapped = ? "
                    "WHERE bank_id = ? AND holder_token = ? AND key_id = ? AND data_version = ?",
                    (
                        new.key_id, new.data_version, new.wrapped, old.bank_id,
                        old.holder_token, old.key_id, old.data_version,
                    ),
                )  # fmt: skip
                if cursor.rowcount != 1:
                    continue  # moved already (a job resumed after a kill), or erased
                moved += 1
                _reseal_cards(db, move.cards)
            db.execute("UPDATE key_jobs SET done = done + ? WHERE job_id = ?", (moved, job_id))
            return moved

        return await self._write(work)

    async def holder_tokens_to_move(self, bank_id: str, version: int, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT DISTINCT holder_token FROM cards WHERE bank_id = ? AND holder_token "
            "NOT LIKE ? LIMIT ?",
            (bank_id, f"{version}.%", limit),
        )
        return [str(r[0]) for r in rows]

    async def count_holder_tokens_to_move(self, bank_id: str, version: int) -> int:
        rows = await self._rows(
            "SELECT count(DISTINCT holder_token) FROM cards WHERE bank_id = ? AND "
            "holder_token NOT LIKE ?",
            (bank_id, f"{version}.%"),
        )
        return int(rows[0][0])

    @uncancellable
    async def move_lookup_tokens(
        self, job_id: str, holder: str, moves: Sequence[LookupMove], until: datetime
    ) -> int:
        def work(db: sqlite3.Connection) -> int:
            _renew_lease(db, job_id, holder, until)
            moved = 0
            for m in moves:
                old = (m.bank_id, m.old_token)
                if m.merges and not _same_cards(db, m.bank_id, m.old_token, m.reseals):
                    continue  # a card came meanwhile: the next batch seals it too
                cursor = db.execute(
                    "UPDATE cards SET holder_token = ? WHERE bank_id = ? AND holder_token = ?",
                    (m.new_token, *old),
                )
                if cursor.rowcount == 0:
                    continue  # moved already (a job resumed after a kill), or erased
                moved += 1
                if m.merges:  # the older cards now under the key the new token has
                    _reseal_cards(db, m.reseals)
                    db.execute(
                        "DELETE FROM holder_keys WHERE bank_id = ? AND holder_token = ?", old
                    )
                else:
                    db.execute(
                        "UPDATE holder_keys SET holder_token = ? WHERE bank_id = ? AND "
                        "holder_token = ?",
                        (m.new_token, *old),
                    )
                # Lockouts and SMS throttles follow the holder (the newer row wins).
                db.execute(
                    "DELETE FROM factor_failures WHERE holder_token = ? AND EXISTS "
                    "(SELECT 1 FROM factor_failures WHERE holder_token = ?)",
                    (m.old_token, m.new_token),
                )
                db.execute(
                    "UPDATE factor_failures SET holder_token = ? WHERE holder_token = ?",
                    (m.new_token, m.old_token),
                )
                db.execute(
                    "UPDATE sms_sends SET holder_token = ? WHERE holder_token = ?",
                    (m.new_token, m.old_token),
                )
                for table in ("holder_links", "disclosures"):  # still found by the holder
                    db.execute(
                        f"UPDATE {table} SET holder_token = ? WHERE bank_id = ? AND "  # noqa: S608
                        "holder_token = ?",
                        (m.new_token, *old),
                    )
            db.execute("UPDATE key_jobs SET done = done + ? WHERE job_id = ?", (moved, job_id))
            return moved

        return await self._write(work)

    @uncancellable
    async def finish_key_job(self, job_id: str, holder: str, now: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE key_jobs SET finished_at = ?, holder = NULL, lease_until = NULL "
                "WHERE job_id = ? AND holder = ?",
                (text_of(now), job_id, holder),
            )

        await self._write(work)

    @uncancellable
    async def add_key_action(self, action: KeyAction, event: KeyEvent) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO key_actions (action_id, kind, bank_id, purpose, version, "
                "recipient_public_key, requested_by, requested_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    action.action_id, action.kind.value, action.bank_id, action.purpose.value,
                    action.version, action.recipient_public_key, action.requested_by,
                    text_of(action.requested_at),
                ),
            )  # fmt: skip
            log_append(db, [key_event_entry(event)])

        await self._write(work)

    async def key_action(self, action_id: str) -> KeyAction | None:
        rows = await self._rows("SELECT * FROM key_actions WHERE action_id = ?", (action_id,))
        return key_action_from(rows[0], time_or_none) if rows else None

    @uncancellable
    async def approve_key_action(
        self, action: KeyAction, approved_by: str, at: datetime, events: Sequence[KeyEvent]
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "UPDATE key_actions SET approved_by = ?, approved_at = ? "
                "WHERE action_id = ? AND approved_by IS NULL",
                (approved_by, text_of(at), action.action_id),
            )
            if cursor.rowcount != 1:
                raise ClaimLost("the action was approved already")
            if action.kind is KeyActionKind.DESTROY:
                db.execute(
                    "UPDATE managed_keys SET wrapped = x'', state = ? WHERE bank_id = ? "
                    "AND purpose = ? AND version = ?",
                    (
                        KeyState.DESTROYED.value,
                        action.bank_id,
                        action.purpose.value,
                        action.version,
                    ),
                )
                bump_topic(db, SharedTopic.KEYS)
            log_append(db, [key_event_entry(e) for e in events])

        await self._write(work)


def _same_cards(
    db: sqlite3.Connection, bank_id: str, holder_token: str, reseals: Sequence[CardReseal]
) -> bool:
    """Whether the holder's cards are exactly those sealed again: a card stored after the
    job read them would stay under a key the move deletes."""
    rows = db.execute(
        "SELECT essc_id FROM cards WHERE bank_id = ? AND holder_token = ?", (bank_id, holder_token)
    ).fetchall()
    return {str(r[0]) for r in rows} == {c.essc_id for c in reseals}


def _renew_lease(db: sqlite3.Connection, job_id: str, holder: str, until: datetime) -> None:
    cursor = db.execute(
        "UPDATE key_jobs SET lease_until = ? WHERE job_id = ? AND holder = ?",
        (text_of(until), job_id, holder),
    )
    if cursor.rowcount != 1:
        raise ClaimLost("the key job is another replica's now")


def _reseal_cards(db: sqlite3.Connection, reseals: Sequence[CardReseal]) -> None:
    db.executemany(
        "UPDATE cards SET name_sealed = ?, id_number_sealed = ?, phone_sealed = ?, "
        "card_number_sealed = ?, guardian_sealed = ? WHERE essc_id = ?",
        [
            (
                c.name_sealed, c.id_number_sealed, c.phone_sealed, c.card_number_sealed,
                c.guardian_sealed, c.essc_id,
            )
            for c in reseals
        ],
    )  # fmt: skip
