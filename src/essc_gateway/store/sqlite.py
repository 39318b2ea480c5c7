"""The embedded default store: SQLite through aiosqlite, in WAL mode.

One writer connection behind an asyncio lock (SQLite has one writer anyway, and coroutines
sharing a connection would otherwise interleave inside each other's transactions) and one
reader connection, which in WAL mode sees only committed data.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
from opentelemetry.trace import Tracer

from essc_gateway.domain.maintenance import MaintenanceWindow
from essc_gateway.errors import GatewayError
from essc_gateway.evidence.entries import window_entry
from essc_gateway.evidence.merkle import TreeHash
from essc_gateway.keys.model import WrappedHolderKey
from essc_gateway.store.base import (
    CardRecord,
    ClaimLost,
    ForwardItem,
    IssueAttempt,
    IssueAttemptState,
    IssueClaim,
    LiveCardConflict,
    LockoutState,
    StoreError,
    WindowChange,
)
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.health import WriteHealth
from essc_gateway.store.migrations import MIGRATIONS
from essc_gateway.store.rows import (
    CARD_COLUMNS,
    attempt_from,
    card_from,
    forward_from,
    window_from_snapshot,
    window_snapshot,
)
from essc_gateway.store.sqlite_cluster import SqliteClusterTables, bump_topic
from essc_gateway.store.sqlite_commit import BatchWriter
from essc_gateway.store.sqlite_evidence import (
    EvidenceTables,
    backfill,
    log_append,
    settle_tree_hash,
)
from essc_gateway.store.sqlite_keys import (
    SqliteKeyJobs,
    SqliteKeyTables,
    insert_holder_key,
    require_holder_key,
)
from essc_gateway.store.sqlite_ledger import LedgerTables
from essc_gateway.store.sqlite_privacy import SqliteErasureJobs, SqlitePrivacyTables
from essc_gateway.store.sqlite_util import one_row, text_of, time_or_none, uncancellable

Synchronous = Literal["FULL", "NORMAL"]
R = TypeVar("R")


def _check_done_with(db: sqlite3.Connection, bank_id: str, key: str, essc_id: str) -> None:
    """Nothing to do if the attempt is done with this card (another request of the same key
    recorded it); ClaimLost if another request holds the key now."""
    with closing(
        db.execute(
            "SELECT state, essc_id FROM issue_attempts WHERE bank_id = ? AND idempotency_key = ?",
            (bank_id, key),
        )
    ) as cursor:
        row = cursor.fetchone()
    if row is None or row["state"] != IssueAttemptState.COMPLETED or row["essc_id"] != essc_id:
        raise ClaimLost("the idempotency key is held by another request now")


def _insert_card(db: sqlite3.Connection, card: CardRecord) -> None:
    try:
        db.execute(
            # Two requests of one bank may both learn of the same card (one issued it, the
            # other was told ALREADY_HELD): the first to record it wins.
            f"INSERT INTO cards ({CARD_COLUMNS}) "  # noqa: S608 - constant columns
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (essc_id) DO NOTHING",
            (
                card.essc_id,
                card.bank_id,
                card.holder_token,
                card.name_sealed,
                card.id_number_sealed,
                card.phone_sealed,
                card.card_number_sealed,
                card.status,
                text_of(card.issued_at),
                card.consent_version,
                text_of(card.consent_accepted_at),
                card.consent_channel,
                card.guardian_sealed,
                card.guardian_relation,
                text_of(card.terminated_at),
            ),
        )
    except sqlite3.IntegrityError as conflict:
        if "cards.holder_token" not in str(conflict):
            raise
        raise LiveCardConflict("the holder has a live card already") from None


def _write_window(db: sqlite3.Connection, window: MaintenanceWindow, recorded_at: datetime) -> None:
    db.execute(
        "INSERT INTO maintenance_windows (window_id, kind, starts_at, ends_at, rpcs, "
        "reason, announced_at, amended_at, cancelled_at, version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (window_id) DO UPDATE SET "
        "starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
        "rpcs = excluded.rpcs, reason = excluded.reason, "
        "amended_at = excluded.amended_at, cancelled_at = excluded.cancelled_at, "
        "version = excluded.version",
        (
            window.window_id,
            window.kind.value,
            text_of(window.starts_at),
            text_of(window.ends_at),
            json.dumps(sorted(window.rpcs)),
            window.reason,
            text_of(window.announced_at),
            text_of(window.amended_at),
            text_of(window.cancelled_at),
            window.version,
        ),
    )
    db.execute(
        "INSERT INTO maintenance_window_versions (window_id, version, recorded_at, snapshot) "
        "VALUES (?, ?, ?, ?)",
        (window.window_id, window.version, text_of(recorded_at), window_snapshot(window)),
    )
    log_append(db, [window_entry(window)])


def configure(connection: sqlite3.Connection, synchronous: Synchronous) -> None:
    """The pragmas of every connection to the store's file (the bench's raw ones too)."""
    connection.execute("PRAGMA busy_timeout=5000")  # first: the others may wait for a lock
    # journal_mode persists in the file, but synchronous resets on every connection.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("PRAGMA foreign_keys=ON")
    # Deleted rows are overwritten with zeros, not left in free space: an erased holder's
    # ciphertexts, tokens and wrapped key leave no readable copy in the file (A14).
    connection.execute("PRAGMA secure_delete=ON")
    # The writer copies the WAL into the file every 10 000 pages (40 MB), not 1 000: a page
    # written by many commits is copied once. Measured: 15-20 % more issuance records a
    # second (256 writers); with 8 writers p99 2.4 ms (was 7.5: fewer stalls), the rarest
    # write 21 ms (was 11: a longer copy). A background checkpointer was worse: it never
    # caught up, and the WAL grew past 1 GB. Erasure still empties the WAL at once.
    connection.execute("PRAGMA wal_autocheckpoint=10000")


@contextmanager
def _migration_lock(path: Path | str) -> Iterator[None]:
    """Held while a process configures and migrates the file: workers and replicas that
    start at the same moment migrate one after the other, each seeing the others' version
    (reading `user_version` and migrating are not one transaction)."""
    if str(path) == ":memory:":
        yield
        return
    with Path(f"{path}.migrate-lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _migrate(connection: sqlite3.Connection) -> None:
    row = connection.execute("PRAGMA user_version").fetchone()
    applied = int(row[0]) if row else 0
    if applied > len(MIGRATIONS):
        raise StoreError("database schema is newer than this gateway")
    for version, script in enumerate(MIGRATIONS[applied:], start=applied + 1):
        connection.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
        )


class SqliteStore(
    LedgerTables,
    SqliteClusterTables,
    EvidenceTables,
    SqliteKeyTables,
    SqliteKeyJobs,
    SqlitePrivacyTables,
    SqliteErasureJobs,
):
    """`Store` on a SQLite file. Build it with `await SqliteStore.open(path)`."""

    def __init__(
        self,
        writer: BatchWriter,
        reader: aiosqlite.Connection,
        tracer: Tracer | None = None,
    ) -> None:
        super().__init__()
        self.tracer = tracer
        self._writer = writer
        self._reader = reader

    @classmethod
    async def open(
        cls,
        path: Path | str,
        synchronous: Synchronous = "FULL",
        tracer: Tracer | None = None,
        evidence_hash: TreeHash = TreeHash.SM3,
    ) -> SqliteStore:
        """Opens (creating and migrating if needed) the database at `path`. A new evidence
        log is hashed with `evidence_hash`; an existing one must use it already."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

        def prepare(connection: sqlite3.Connection) -> None:
            with _migration_lock(path):
                configure(connection, synchronous)
                _migrate(connection)
                with connection:
                    settle_tree_hash(connection, evidence_hash)
                backfill(connection)

        writer = await BatchWriter.open(path, prepare)
        try:
            reader = await aiosqlite.connect(path, isolation_level=None)
            reader.row_factory = sqlite3.Row
            await reader.execute("PRAGMA busy_timeout=5000")
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader, tracer)

    @property
    def health(self) -> WriteHealth:
        """Whether writes succeed right now; told by every write."""
        return self._writer.health

    async def probe_write(self) -> None:
        """One small write, to learn whether the store writes again (raises StoreUnavailable
        while it cannot)."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, datetime('now'))")

        await self._write(work)

    async def _write(self, work: Callable[[sqlite3.Connection], R], *, durable: bool = True) -> R:
        """Runs `work` in a transaction (group commit, see `sqlite_commit`); committed on
        return, and durable unless `durable` is False (see `Store`: the writes that may be
        lazy). Only the port's errors leave: a rule of SQLite broken is a StoreError."""
        try:
            return await self._writer.run(work, durable=durable)
        except (StoreError, GatewayError):
            raise
        except Exception as error:
            raise StoreError(f"store operation failed: {type(error).__name__}") from error

    async def _fetch_all(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        # One hand-off to the reader's thread (execute, fetch and close there), not three.
        return list(await self._reader.execute_fetchall(sql, params))

    async def _fetch_one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        """The first row of a query that finds one row at most (a key, or LIMIT 1)."""
        rows = await self._fetch_all(sql, params)
        return rows[0] if rows else None

    @uncancellable
    async def claim_issue(
        self,
        bank_id: str,
        idempotency_key: str,
        fingerprint: str,
        now: datetime,
        lease_until: datetime,
        draft_sealed: bytes | None,
    ) -> IssueClaim:
        token = secrets.token_hex(8)

        def work(db: sqlite3.Connection) -> IssueClaim:
            cursor = db.execute(
                "INSERT INTO issue_attempts (bank_id, idempotency_key, fingerprint, state, "
                "created_at, lease_until, draft_sealed, claim) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    bank_id,
                    idempotency_key,
                    fingerprint,
                    IssueAttemptState.PENDING,
                    text_of(now),
                    text_of(lease_until),
                    draft_sealed,
                    token,
                ),
            )
            if cursor.rowcount == 1:
                return IssueClaim(existing=None, token=token)
            with closing(
                db.execute(
                    "SELECT * FROM issue_attempts WHERE bank_id = ? AND idempotency_key = ?",
                    (bank_id, idempotency_key),
                )
            ) as existing:
                row = existing.fetchone()
            if row is None:
                raise StoreError("claim_issue: conflicting attempt vanished")
            attempt = attempt_from(row, time_or_none)
            if attempt.fingerprint != fingerprint or not attempt.in_doubt_at(now):
                return IssueClaim(existing=attempt)
            # Take over an attempt left in doubt, or one whose request died (its lease ran
            # out): the platform may have processed it, so the new claimant settles it first.
            db.execute(
                "UPDATE issue_attempts SET state = ?, lease_until = ?, claim = ?, "
                "draft_sealed = COALESCE(?, draft_sealed) "
                "WHERE bank_id = ? AND idempotency_key = ?",
                (
                    IssueAttemptState.PENDING,
                    text_of(lease_until),
                    token,
                    draft_sealed,
                    bank_id,
                    idempotency_key,
                ),
            )
            return IssueClaim(existing=None, token=token, was_in_doubt=True)

        return await self._write(work)

    async def unsettled_issues(
        self, now: datetime, limit: int, grace: timedelta
    ) -> list[IssueAttempt]:
        # Each settlement claims the key anew (a fresh lease): keys that cannot be settled
        # yet go to the back of the line instead of blocking it.
        rows = await self._fetch_all(
            "SELECT * FROM issue_attempts WHERE draft_sealed IS NOT NULL AND (state = ? "
            "OR (state = ? AND (lease_until IS NULL OR lease_until <= ?))) "
            "ORDER BY lease_until LIMIT ?",
            (
                IssueAttemptState.IN_DOUBT,
                IssueAttemptState.PENDING,
                text_of(now - grace),
                limit,
            ),
        )
        return [attempt_from(row, time_or_none) for row in rows]

    @uncancellable
    async def complete_issue(
        self,
        bank_id: str,
        idempotency_key: str,
        outcome: str,
        essc_id: str,
        new_card: CardRecord | None,
        now: datetime,
        claim: str,
        new_holder_key: WrappedHolderKey | None = None,
        holder_key_id: str | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            if new_card is not None:
                if new_holder_key is None and holder_key_id is not None:
                    require_holder_key(db, bank_id, new_card.holder_token, holder_key_id)
                _insert_card(db, new_card)
                if new_holder_key is not None:
                    insert_holder_key(db, new_holder_key)
            cursor = db.execute(
                # The card row now holds what the draft held: no second sealed copy is kept.
                "UPDATE issue_attempts SET state = ?, outcome = ?, essc_id = ?, completed_at = ?, "
                "draft_sealed = NULL, claim = NULL "
                "WHERE bank_id = ? AND idempotency_key = ? AND ((state = ? AND claim = ?) OR "
                "(state = ? AND EXISTS (SELECT 1 FROM forward_queue q WHERE q.bank_id = ? "
                "AND q.idempotency_key = ? AND q.claim = ?)))",
                (
                    IssueAttemptState.COMPLETED,
                    outcome,
                    essc_id,
                    text_of(now),
                    bank_id,
                    idempotency_key,
                    IssueAttemptState.PENDING,
                    claim,
                    IssueAttemptState.FORWARD_PENDING,
                    bank_id,
                    idempotency_key,
                    claim,
                ),
            )
            if cursor.rowcount != 1:
                _check_done_with(db, bank_id, idempotency_key, essc_id)
                return
            db.execute(
                "DELETE FROM forward_queue WHERE bank_id = ? AND idempotency_key = ?",
                (bank_id, idempotency_key),
            )

        return await self._write(work, durable=not lazy)  # see Store.complete_issue

    async def get_issue_attempt(self, bank_id: str, idempotency_key: str) -> IssueAttempt | None:
        row = await self._fetch_one(
            "SELECT * FROM issue_attempts WHERE bank_id = ? AND idempotency_key = ?",
            (bank_id, idempotency_key),
        )
        return None if row is None else attempt_from(row, time_or_none)

    @uncancellable
    async def accept_for_forwarding(
        self,
        bank_id: str,
        idempotency_key: str,
        payload_sealed: bytes,
        accepted_at: datetime,
        forward_after: datetime,
        claim: str,
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "UPDATE issue_attempts SET state = ?, claim = NULL, draft_sealed = NULL "
                "WHERE bank_id = ? AND idempotency_key = ? AND state = ? AND claim = ?",
                (
                    IssueAttemptState.FORWARD_PENDING,
                    bank_id,
                    idempotency_key,
                    IssueAttemptState.PENDING,
                    claim,
                ),
            )
            if cursor.rowcount != 1:
                raise ClaimLost("accept_for_forwarding: the key is held by another request")
            db.execute(
                "INSERT INTO forward_queue (bank_id, idempotency_key, payload_sealed, "
                "accepted_at, forward_after) VALUES (?, ?, ?, ?, ?)",
                (
                    bank_id,
                    idempotency_key,
                    payload_sealed,
                    text_of(accepted_at),
                    text_of(forward_after),
                ),
            )

        return await self._write(work)

    async def any_due_forward(self, now: datetime) -> bool:
        row = await self._fetch_one(
            "SELECT 1 FROM forward_queue WHERE forward_after <= ? "
            "AND (claimed_until IS NULL OR claimed_until <= ?) LIMIT 1",
            (text_of(now), text_of(now)),
        )
        return row is not None

    async def forward_queue_depth(self) -> int:
        row = await self._fetch_one("SELECT COUNT(*) FROM forward_queue", ())
        return 0 if row is None else int(row[0])

    def connections(self) -> Mapping[str, int]:
        return {"writer": 1, "reader": 1}  # one writer thread, one reader: always open

    @uncancellable
    async def claim_due_forwards(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[ForwardItem]:
        token = secrets.token_hex(8)

        def work(db: sqlite3.Connection) -> list[ForwardItem]:
            with closing(
                db.execute(
                    "UPDATE forward_queue SET claimed_until = ?, claim = ? WHERE rowid IN "
                    "(SELECT rowid FROM forward_queue WHERE forward_after <= ? AND "
                    "(claimed_until IS NULL OR claimed_until <= ?) "
                    "ORDER BY forward_after, accepted_at LIMIT ?) RETURNING *",
                    (text_of(lease_until), token, text_of(now), text_of(now), limit),
                )
            ) as cursor:
                rows = cursor.fetchall()
            items = [forward_from(row, time_or_none) for row in rows]
            return sorted(items, key=lambda item: (item.forward_after, item.accepted_at))

        return await self._write(work)

    @uncancellable
    async def postpone_forward(
        self, bank_id: str, idempotency_key: str, forward_after: datetime, claim: str
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE forward_queue SET forward_after = ?, tries = tries + 1, "
                "claimed_until = NULL, claim = NULL "
                "WHERE bank_id = ? AND idempotency_key = ? AND claim = ?",
                (text_of(forward_after), bank_id, idempotency_key, claim),
            )

        return await self._write(work)

    @uncancellable
    async def fail_forward(
        self, bank_id: str, idempotency_key: str, reason: str, now: datetime, claim: str
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            held = one_row(
                db,
                "SELECT 1 FROM forward_queue WHERE bank_id = ? AND idempotency_key = ? "
                "AND claim = ?",
                (bank_id, idempotency_key, claim),
            )
            if held is None:
                return  # another replica holds it now: its outcome stands
            db.execute(
                "UPDATE issue_attempts SET state = ?, failure_reason = ?, completed_at = ? "
                "WHERE bank_id = ? AND idempotency_key = ? AND state = ?",
                (
                    IssueAttemptState.FAILED,
                    reason,
                    text_of(now),
                    bank_id,
                    idempotency_key,
                    IssueAttemptState.FORWARD_PENDING,
                ),
            )
            db.execute(
                "DELETE FROM forward_queue WHERE bank_id = ? AND idempotency_key = ?",
                (bank_id, idempotency_key),
            )

        return await self._write(work)

    @uncancellable
    async def save_window(self, window: MaintenanceWindow, recorded_at: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            _write_window(db, window, recorded_at)
            bump_topic(db, SharedTopic.WINDOWS)

        return await self._write(work)

    @uncancellable
    async def update_window(
        self, window_id: str, change: WindowChange, recorded_at: datetime
    ) -> MaintenanceWindow | None:
        def work(db: sqlite3.Connection) -> MaintenanceWindow | None:
            with closing(
                db.execute(
                    "SELECT version, snapshot FROM maintenance_window_versions "
                    "WHERE window_id = ? ORDER BY version DESC LIMIT 1",
                    (window_id,),
                )
            ) as cursor:
                row = cursor.fetchone()
            if row is None:
                return None
            current = window_from_snapshot(window_id, int(row[0]), str(row[1]))
            changed = change(current)
            if changed == current:
                return current
            window = replace(changed, version=current.version + 1)
            _write_window(db, window, recorded_at)
            bump_topic(db, SharedTopic.WINDOWS)
            return window

        return await self._write(work)

    async def window_versions(self) -> list[MaintenanceWindow]:
        rows = await self._fetch_all(
            "SELECT window_id, version, snapshot FROM maintenance_window_versions "
            "ORDER BY window_id, version",
            (),
        )
        return [window_from_snapshot(row[0], int(row[1]), row[2]) for row in rows]

    @uncancellable
    async def mark_issue_in_doubt(self, bank_id: str, idempotency_key: str, claim: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE issue_attempts SET state = ?, claim = NULL "
                "WHERE bank_id = ? AND idempotency_key = ? AND state = ? AND claim = ?",
                (
                    IssueAttemptState.IN_DOUBT,
                    bank_id,
                    idempotency_key,
                    IssueAttemptState.PENDING,
                    claim,
                ),
            )

        return await self._write(work)

    @uncancellable
    async def release_issue(self, bank_id: str, idempotency_key: str, claim: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM issue_attempts WHERE bank_id = ? AND idempotency_key = ? "
                "AND state = ? AND claim = ?",
                (bank_id, idempotency_key, IssueAttemptState.PENDING, claim),
            )

        return await self._write(work)

    async def active_card_for_holder(self, holder_token: str) -> CardRecord | None:
        row = await self._fetch_one(
            f"SELECT {CARD_COLUMNS} FROM cards "  # noqa: S608 - constant columns
            "WHERE holder_token = ? AND status != 'TERMINATED'",
            (holder_token,),
        )
        return None if row is None else card_from(row, time_or_none)

    async def current_card_for_holder(self, holder_token: str) -> CardRecord | None:
        row = await self._fetch_one(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE holder_token = ? "  # noqa: S608
            "ORDER BY status = 'TERMINATED', issued_at DESC LIMIT 1",
            (holder_token,),
        )
        return None if row is None else card_from(row, time_or_none)

    async def get_card(self, essc_id: str) -> CardRecord | None:
        row = await self._fetch_one(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE essc_id = ?",  # noqa: S608
            (essc_id,),
        )
        return None if row is None else card_from(row, time_or_none)

    @uncancellable
    async def set_card_status(
        self, essc_id: str, status: str, terminated_at: datetime | None = None
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE cards SET status = ?, terminated_at = COALESCE(?, terminated_at) "
                "WHERE essc_id = ?",
                (status, text_of(terminated_at), essc_id),
            )

        return await self._write(work)

    @uncancellable
    async def begin_factor_attempt(
        self, holder_token: str, now: datetime, max_failures: int, stale_after: timedelta
    ) -> LockoutState:
        def work(db: sqlite3.Connection) -> LockoutState:
            with closing(
                db.execute(
                    "SELECT consecutive_failures, locked_until, in_flight, in_flight_since "
                    "FROM factor_failures WHERE holder_token = ?",
                    (holder_token,),
                )
            ) as cursor:
                row = cursor.fetchone()
            failures, locked_until, in_flight = 0, None, 0
            if row is not None:
                failures, locked_until = int(row[0]), time_or_none(row[1])
                since = time_or_none(row[3])
                fresh = since is not None and now - since < stale_after
                in_flight = int(row[2]) if fresh else 0
            if (locked_until is not None and now < locked_until) or (
                failures + in_flight >= max_failures
            ):
                return LockoutState(failures, locked_until, admitted=False)
            db.execute(
                "INSERT INTO factor_failures (holder_token, consecutive_failures, in_flight, "
                "in_flight_since) VALUES (?, 0, 1, ?) ON CONFLICT (holder_token) DO UPDATE "
                "SET in_flight = ?, in_flight_since = excluded.in_flight_since",
                (holder_token, text_of(now), in_flight + 1),
            )
            return LockoutState(failures, locked_until)

        return await self._write(work, durable=False)  # see Store.begin_factor_attempt

    @uncancellable
    async def end_factor_attempt(
        self,
        holder_token: str,
        verdict: bool | None,
        now: datetime,
        max_failures: int,
        lock_for: timedelta,
    ) -> LockoutState:
        def work(db: sqlite3.Connection) -> LockoutState:
            with closing(
                db.execute(
                    "UPDATE factor_failures SET in_flight = MAX(in_flight - 1, 0), "
                    "consecutive_failures = CASE ? WHEN 1 THEN 0 WHEN 0 "
                    "THEN consecutive_failures + 1 ELSE consecutive_failures END "
                    "WHERE holder_token = ? RETURNING consecutive_failures, locked_until",
                    (None if verdict is None else int(verdict), holder_token),
                )
            ) as cursor:
                row = cursor.fetchone()
            if row is None:
                return LockoutState(0, None)
            failures, locked_until = int(row[0]), time_or_none(row[1])
            if verdict is False and failures >= max_failures:
                locked_until = now + lock_for
                # The count restarts, so the holder gets a fresh set of tries after the lock.
                db.execute(
                    "UPDATE factor_failures SET consecutive_failures = 0, locked_until = ? "
                    "WHERE holder_token = ?",
                    (text_of(locked_until), holder_token),
                )
            return LockoutState(failures, locked_until)

        # Only a failure must outlive a crash: see Store.end_factor_attempt.
        return await self._write(work, durable=verdict is False)

    @uncancellable
    async def record_sms_send(
        self,
        holder_token: str,
        purpose: str,
        now: datetime,
        min_interval: timedelta,
        daily_limit: int,
    ) -> timedelta | None:
        day_ago = now - timedelta(days=1)

        def work(db: sqlite3.Connection) -> timedelta | None:
            db.execute(
                "DELETE FROM sms_sends WHERE holder_token = ? AND sent_at <= ?",
                (holder_token, text_of(day_ago)),
            )
            with closing(
                db.execute(
                    # Both limits are the holder's, whatever the scenario: one phone gets
                    # one code per interval, not one per scenario.
                    "SELECT MAX(sent_at), MIN(sent_at), COUNT(*) "
                    "FROM sms_sends WHERE holder_token = ?",
                    (holder_token,),
                )
            ) as cursor:
                row = cursor.fetchone()
            assert row is not None
            last, oldest, count = time_or_none(row[0]), time_or_none(row[1]), int(row[2])
            if last is not None and now - last < min_interval:
                return min_interval - (now - last)
            if count >= daily_limit and oldest is not None:
                return oldest + timedelta(days=1) - now
            db.execute(
                "INSERT INTO sms_sends (holder_token, purpose, sent_at) VALUES (?, ?, ?)",
                (holder_token, purpose, text_of(now)),
            )
            return None

        return await self._write(work)

    @uncancellable
    async def forget_sms_send(self, holder_token: str, purpose: str, sent_at: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM sms_sends WHERE holder_token = ? AND purpose = ? AND sent_at = ?",
                (holder_token, purpose, text_of(sent_at)),
            )

        return await self._write(work)

    async def close(self) -> None:
        await self.drain_appends()  # ledger records in flight are written, not lost
        await self._reader.close()
        await self._writer.close()
