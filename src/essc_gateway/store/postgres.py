"""The shared store: PostgreSQL through an asyncpg pool, for N replicas on several hosts.

Every write is one transaction whose invariants hold across replicas by the database's
locks, never by Python read-modify-write: a claim is `INSERT ... ON CONFLICT` then a row
lock, counters are updated under the row's lock, the ledger's head row serialises appends.
A write runs as a task of its own and its caller only waits for it, so a caller cancelled
mid-write (a client gone) leaves the write to complete: the port's contract.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
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
    HolderKeyTaken,
    IssueAttempt,
    IssueAttemptState,
    IssueClaim,
    LiveCardConflict,
    LockoutState,
    StoreError,
    StoreUnavailable,
    WindowChange,
)
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.coalescing import Coalescer
from essc_gateway.store.health import WriteHealth
from essc_gateway.store.location import PostgresDatabase
from essc_gateway.store.postgres_batches import Completion, NewClaim, claim_many, complete_many
from essc_gateway.store.postgres_cluster import PostgresClusterTables, bump_topic
from essc_gateway.store.postgres_errors import (
    is_contended,
    live_card_conflict,
    unavailability,
)
from essc_gateway.store.postgres_evidence import (
    PostgresEvidenceTables,
    backfill,
    log_append,
    settle_tree_hash,
)
from essc_gateway.store.postgres_keys import PostgresKeyJobs, PostgresKeyTables
from essc_gateway.store.postgres_ledger import PostgresLedgerTables
from essc_gateway.store.postgres_privacy import PostgresErasureJobs, PostgresPrivacyTables
from essc_gateway.store.postgres_schema import Db, migrate
from essc_gateway.store.rows import (
    CARD_COLUMNS,
    attempt_from,
    card_from,
    forward_from,
    window_from_snapshot,
    window_snapshot,
)
from essc_gateway.store.rows import (
    as_stored as _as_stored,
)
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")
Transaction = Callable[[Db], Awaitable[R]]
_CONTENDED_RETRIES = 5
STATEMENT_TIMEOUT = 10.0
"""Seconds a statement may take before the store counts as unavailable."""
GROUP_COMMIT_LANES = 3
"""Batches of one kind in flight at once: measured, 2 to 5 commit the same (CPU bound)."""
ACQUIRE_TIMEOUT = 5.0
"""Seconds to wait for a pooled connection (all busy, or the database unreachable)."""


async def _write_window(db: Db, window: MaintenanceWindow, recorded_at: datetime) -> None:
    await db.execute(
        "INSERT INTO maintenance_windows (window_id, kind, starts_at, ends_at, rpcs, reason, "
        "announced_at, amended_at, cancelled_at, version) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (window_id) DO UPDATE "
        "SET starts_at = excluded.starts_at, ends_at = excluded.ends_at, rpcs = excluded.rpcs, "
        "reason = excluded.reason, amended_at = excluded.amended_at, "
        "cancelled_at = excluded.cancelled_at, version = excluded.version",
        window.window_id,
        window.kind.value,
        window.starts_at,
        window.ends_at,
        json.dumps(sorted(window.rpcs)),
        window.reason,
        window.announced_at,
        window.amended_at,
        window.cancelled_at,
        window.version,
    )
    await db.execute(
        "INSERT INTO maintenance_window_versions (window_id, version, recorded_at, snapshot) "
        "VALUES ($1, $2, $3, $4)",
        window.window_id,
        window.version,
        recorded_at,
        window_snapshot(window),
    )
    await log_append(db, [window_entry(window)])


# The attempt first: the card goes in only if this claim still holds the key (a CTE sees
# another's RETURNING rows, not its effects); a second live card of the holder fails it all.
_COMPLETE_WITH_CARD = (
    # The stored key the card is sealed under, still the holder's: locked FOR SHARE until
    # commit, so that a key job replacing it waits and then sees this card ($29 NULL: a
    # new key, inserted below, or not checked).
    "WITH held AS (SELECT 1 FROM holder_keys WHERE bank_id = $11 AND holder_token = $12 "  # noqa: S608
    "AND key_id = $29 FOR SHARE), "
    "done AS (UPDATE issue_attempts SET state = $1, outcome = $2, "
    "essc_id = $3, completed_at = $4, draft_sealed = NULL, claim = NULL "
    "WHERE bank_id = $5 AND idempotency_key = $6 AND ((state = $7 AND claim = $8) "
    "OR (state = $9 AND EXISTS (SELECT 1 FROM forward_queue q WHERE "
    "q.bank_id = $5 AND q.idempotency_key = $6 AND q.claim = $8))) "
    "AND ($29::text IS NULL OR EXISTS (SELECT 1 FROM held)) RETURNING 1), "
    "card AS (INSERT INTO cards (" + CARD_COLUMNS + ") "
    "SELECT $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, "
    "$23, $24 WHERE EXISTS (SELECT 1 FROM done) ON CONFLICT (essc_id) DO NOTHING), "
    "queue AS (DELETE FROM forward_queue WHERE bank_id = $5 AND "
    "idempotency_key = $6 AND EXISTS (SELECT 1 FROM done)), "
    # The holder's new key, when the holder had none; a key stored meanwhile by another
    # request fails it all (HolderKeyTaken): the card must be sealed under the stored one.
    "hk AS (INSERT INTO holder_keys (bank_id, holder_token, key_id, data_version, wrapped, "
    "created_at) SELECT $11, $12, $25, $26, $27, $28 "
    "WHERE $25::text IS NOT NULL AND EXISTS (SELECT 1 FROM done)) "
    "SELECT (SELECT count(*) FROM done) AS done, (SELECT count(*) FROM held) AS held"
)


async def _no_reset(connection: object) -> None:
    """The pool's reset on release: nothing to undo."""


def _lazy(transaction: Transaction[R]) -> Transaction[R]:
    """`transaction`, committed without waiting for the WAL flush: visible at once, durable
    with the next durable commit (the WAL is flushed in order) or the WAL writer's next
    round, lost only if the database server crashes before either."""

    async def lazily(db: Db) -> R:
        await db.execute("SET LOCAL synchronous_commit = off")
        return await transaction(db)

    return lazily


class PostgresStore(
    PostgresPrivacyTables,
    PostgresErasureJobs,
    PostgresLedgerTables,
    PostgresClusterTables,
    PostgresEvidenceTables,
    PostgresKeyTables,
    PostgresKeyJobs,
):
    """`Store` and `LedgerStore` on PostgreSQL. Build it with `await PostgresStore.open(...)`."""

    def __init__(
        self, pool: asyncpg.Pool, database: PostgresDatabase, tracer: Tracer | None = None
    ) -> None:
        super().__init__()
        self.tracer = tracer
        self._pool = pool
        self._database = database
        self.health = WriteHealth()
        self._writes: set[asyncio.Task[Any]] = set()
        # Group commit of the two writes of every Issue, on a few connections at once (the
        # rest of the pool serves reads and other writes meanwhile).
        lanes = max(1, min(GROUP_COMMIT_LANES, pool.get_max_size() // 2))
        self._claims: Coalescer[NewClaim, bool] = Coalescer(self._claim_batch, lanes, 500)
        self._completions: Coalescer[Completion, bool] = Coalescer(self._complete_batch, lanes, 500)

    @classmethod
    async def open(
        cls,
        database: PostgresDatabase,
        tracer: Tracer | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        evidence_hash: TreeHash = TreeHash.SM3,
    ) -> PostgresStore:
        """Connects, migrates (once across replicas), and keeps a pool of `pool_size`. A
        new evidence log is hashed with `evidence_hash`; an existing one must use it."""
        pool = await asyncpg.create_pool(
            database.dsn,
            min_size=1,
            max_size=pool_size,
            timeout=connect_timeout,
            # A silent database (a frozen link, no reset) must fail calls, not hang them.
            command_timeout=STATEMENT_TIMEOUT,
            # No session state to reset on release (transaction-scoped locks only, no
            # LISTEN or cursors on pooled connections): saves a round trip per use.
            reset=_no_reset,
            server_settings={
                "application_name": "essc-gateway",
                # Pinned, whatever the server's defaults: the adapter's locking is written
                # for read committed, and an acknowledged write must be durable (kill -9).
                "default_transaction_isolation": "read committed",
                "synchronous_commit": "on",
                "idle_in_transaction_session_timeout": "30s",
                "tcp_keepalives_idle": "5",
                "tcp_keepalives_interval": "2",
                "tcp_keepalives_count": "3",
            },
        )
        try:

            async def evidence(db: Db) -> None:
                await settle_tree_hash(db, evidence_hash)
                await backfill(db)

            async with pool.acquire() as connection:
                await migrate(connection, then=evidence)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, database, tracer)

    async def _write(
        self, transaction: Transaction[R], *, one_statement: bool = False, durable: bool = True
    ) -> R:
        """Runs `transaction` in a transaction of its own, committed on return and durable
        unless `durable` is False (see `Store`: the writes that may be lazy); a caller
        cancelled meanwhile cancels only its wait. `one_statement`: it runs a single
        statement, atomic by itself: no BEGIN and COMMIT round trips around it."""
        if not durable:
            assert not one_statement, "SET LOCAL needs the transaction around it"
            transaction = _lazy(transaction)
        task = asyncio.ensure_future(self._transact(transaction, one_statement))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _transact(self, transaction: Transaction[R], one_statement: bool) -> R:
        for attempt in range(_CONTENDED_RETRIES):
            try:
                async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as connection:
                    if one_statement:
                        result = await transaction(connection)
                    else:
                        async with connection.transaction():
                            result = await transaction(connection)
            except Exception as error:
                if is_contended(error) and attempt + 1 < _CONTENDED_RETRIES:
                    await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311
                    continue  # rolled back whole: run it again
                raise self._failure(error) from error
            self.health.report(True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, error: Exception) -> Exception:
        """The port's error for `error`: domain errors pass; the database unavailable is
        StoreUnavailable (and health, when it cannot write at all); anything else is a
        StoreError, so that no driver type crosses the port."""
        if isinstance(error, StoreError | GatewayError) and not isinstance(error, StoreUnavailable):
            return error
        found = unavailability(error)
        if found is None:
            return StoreError(f"store operation failed: {type(error).__name__}")
        if found[1]:
            self.health.report(False)
        return found[0]

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as connection:
                return list(await connection.fetch(sql, *params))
        except Exception as error:
            raise self._failure(error) from error

    async def _row(self, sql: str, *params: Any) -> asyncpg.Record | None:
        rows = await self._rows(sql, *params)
        return rows[0] if rows else None

    async def probe_write(self) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "INSERT INTO write_probe (id, at) VALUES (1, now()) "
                "ON CONFLICT (id) DO UPDATE SET at = excluded.at"
            )

        await self._write(work)

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

        # Most keys are new: claimed with others in one statement. A key in use is looked at
        # under its row lock in a transaction.
        new = NewClaim(bank_id, idempotency_key, fingerprint, now, lease_until, draft_sealed, token)
        if await self._claims.submit(new):
            return IssueClaim(existing=None, token=token)

        async def work(db: Db) -> IssueClaim:
            # Each statement sees what was committed when it began: a row the INSERT met
            # may be gone (released) by the SELECT. Then insert again.
            while True:
                inserted = await db.fetchval(
                    "INSERT INTO issue_attempts (bank_id, idempotency_key, fingerprint, state, "
                    "created_at, lease_until, draft_sealed, claim) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING 1",
                    bank_id,
                    idempotency_key,
                    fingerprint,
                    IssueAttemptState.PENDING.value,
                    now,
                    lease_until,
                    draft_sealed,
                    token,
                )
                if inserted is not None:
                    return IssueClaim(existing=None, token=token)
                row = await db.fetchrow(
                    "SELECT * FROM issue_attempts WHERE bank_id = $1 AND idempotency_key = $2 "
                    "FOR UPDATE",
                    bank_id,
                    idempotency_key,
                )
                if row is not None:
                    break
            attempt = attempt_from(row, _as_stored)
            if attempt.fingerprint != fingerprint or not attempt.in_doubt_at(now):
                return IssueClaim(existing=attempt)
            # Take over an attempt left in doubt or whose request died (see SqliteStore).
            await db.execute(
                "UPDATE issue_attempts SET state = $1, lease_until = $2, claim = $3, "
                "draft_sealed = COALESCE($4, draft_sealed) "
                "WHERE bank_id = $5 AND idempotency_key = $6",
                IssueAttemptState.PENDING.value,
                lease_until,
                token,
                draft_sealed,
                bank_id,
                idempotency_key,
            )
            return IssueClaim(existing=None, token=token, was_in_doubt=True)

        return await self._write(work)

    async def unsettled_issues(
        self, now: datetime, limit: int, grace: timedelta
    ) -> list[IssueAttempt]:
        rows = await self._rows(
            "SELECT * FROM issue_attempts WHERE draft_sealed IS NOT NULL AND (state = $1 "
            "OR (state = $2 AND (lease_until IS NULL OR lease_until <= $3))) "
            "ORDER BY lease_until NULLS FIRST LIMIT $4",
            IssueAttemptState.IN_DOUBT.value,
            IssueAttemptState.PENDING.value,
            now - grace,
            limit,
        )
        return [attempt_from(row, _as_stored) for row in rows]

    @uncancellable
    async def mark_issue_in_doubt(self, bank_id: str, idempotency_key: str, claim: str) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "UPDATE issue_attempts SET state = $1, claim = NULL "
                "WHERE bank_id = $2 AND idempotency_key = $3 AND state = $4 AND claim = $5",
                IssueAttemptState.IN_DOUBT.value,
                bank_id,
                idempotency_key,
                IssueAttemptState.PENDING.value,
                claim,
            )

        await self._write(work)

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
        expected_key = holder_key_id if new_holder_key is None else None

        async def in_one_statement(db: Db) -> bool:
            # The attempt done, the card, the queue entry gone: one statement, atomic.
            values = [getattr(new_card, name) for name in CARD_COLUMNS.split(", ")]
            key = new_holder_key
            key_values = (
                [key.key_id, key.data_version, key.wrapped, key.created_at]
                if key is not None
                else [None, None, None, None]
            )
            with live_card_conflict():
                row = await db.fetchrow(
                    _COMPLETE_WITH_CARD,
                    IssueAttemptState.COMPLETED.value,
                    outcome,
                    essc_id,
                    now,
                    bank_id,
                    idempotency_key,
                    IssueAttemptState.PENDING.value,
                    claim,
                    IssueAttemptState.FORWARD_PENDING.value,
                    *values,
                    *key_values,
                    expected_key,
                )
            assert row is not None
            if expected_key is not None and not row["held"]:
                raise HolderKeyTaken("the holder's key was replaced: seal under the stored one")
            return bool(row["done"])

        async def work(db: Db) -> bool:  # no card to record (ALREADY_HELD)
            done = await db.fetchval(
                "UPDATE issue_attempts SET state = $1, outcome = $2, essc_id = $3, "
                "completed_at = $4, draft_sealed = NULL, claim = NULL "
                "WHERE bank_id = $5 AND idempotency_key = $6 AND ((state = $7 AND claim = $8) "
                "OR (state = $9 AND EXISTS (SELECT 1 FROM forward_queue q WHERE q.bank_id = $5 "
                "AND q.idempotency_key = $6 AND q.claim = $8))) RETURNING 1",
                IssueAttemptState.COMPLETED.value,
                outcome,
                essc_id,
                now,
                bank_id,
                idempotency_key,
                IssueAttemptState.PENDING.value,
                claim,
                IssueAttemptState.FORWARD_PENDING.value,
            )
            if done is not None:
                await db.execute(
                    "DELETE FROM forward_queue WHERE bank_id = $1 AND idempotency_key = $2",
                    bank_id,
                    idempotency_key,
                )
            return done is not None

        completed = False
        if lazy and new_card is not None and claim:
            # The common case (a request's own ISSUED claim): completed with others in one
            # lazy statement. Anything else (durable, a key taken over) goes alone below.
            completed = await self._completions.submit(
                Completion(
                    bank_id,
                    idempotency_key,
                    outcome,
                    essc_id,
                    new_card,
                    now,
                    claim,
                    new_holder_key,
                    expected_key,
                )
            )
        if not completed and new_card is not None:
            completed = await self._write(in_one_statement, one_statement=True)
        elif not completed:
            completed = await self._write(work)
        if completed:
            return

        async def check(db: Db) -> None:
            row = await db.fetchrow(
                "SELECT state, essc_id FROM issue_attempts "
                "WHERE bank_id = $1 AND idempotency_key = $2",
                bank_id,
                idempotency_key,
            )
            if (
                row is None
                or row["state"] != IssueAttemptState.COMPLETED
                or row["essc_id"] != essc_id
            ):
                raise ClaimLost("the idempotency key is held by another request now")

        await self._write(check, one_statement=True)

    async def get_issue_attempt(self, bank_id: str, idempotency_key: str) -> IssueAttempt | None:
        row = await self._row(
            "SELECT * FROM issue_attempts WHERE bank_id = $1 AND idempotency_key = $2",
            bank_id,
            idempotency_key,
        )
        return None if row is None else attempt_from(row, _as_stored)

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
        async def work(db: Db) -> None:
            accepted = await db.fetchval(
                "UPDATE issue_attempts SET state = $1, claim = NULL, draft_sealed = NULL "
                "WHERE bank_id = $2 AND idempotency_key = $3 AND state = $4 AND claim = $5 "
                "RETURNING 1",
                IssueAttemptState.FORWARD_PENDING.value,
                bank_id,
                idempotency_key,
                IssueAttemptState.PENDING.value,
                claim,
            )
            if accepted is None:
                raise ClaimLost("accept_for_forwarding: the key is held by another request")
            await db.execute(
                "INSERT INTO forward_queue (bank_id, idempotency_key, payload_sealed, "
                "accepted_at, forward_after) VALUES ($1, $2, $3, $4, $5)",
                bank_id,
                idempotency_key,
                payload_sealed,
                accepted_at,
                forward_after,
            )

        await self._write(work)

    async def any_due_forward(self, now: datetime) -> bool:
        row = await self._row(
            "SELECT 1 FROM forward_queue WHERE forward_after <= $1 "
            "AND (claimed_until IS NULL OR claimed_until <= $1) LIMIT 1",
            now,
        )
        return row is not None

    async def forward_queue_depth(self) -> int:
        row = await self._row("SELECT count(*) FROM forward_queue")
        return 0 if row is None else int(row[0])

    def connections(self) -> Mapping[str, int]:
        idle = self._pool.get_idle_size()
        return {"used": self._pool.get_size() - idle, "idle": idle}

    @uncancellable
    async def claim_due_forwards(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[ForwardItem]:
        token = secrets.token_hex(8)

        async def work(db: Db) -> list[ForwardItem]:
            rows = await db.fetch(
                # SKIP LOCKED: replicas claiming at the same moment take different entries.
                "UPDATE forward_queue SET claimed_until = $1, claim = $4 "
                "WHERE (bank_id, idempotency_key) "
                "IN (SELECT bank_id, idempotency_key FROM forward_queue "
                "WHERE forward_after <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) "
                "ORDER BY forward_after, accepted_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
                "RETURNING *",
                lease_until,
                now,
                limit,
                token,
            )
            items = [forward_from(row, _as_stored) for row in rows]
            return sorted(items, key=lambda item: (item.forward_after, item.accepted_at))

        return await self._write(work)

    @uncancellable
    async def postpone_forward(
        self, bank_id: str, idempotency_key: str, forward_after: datetime, claim: str
    ) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "UPDATE forward_queue SET forward_after = $1, tries = tries + 1, "
                "claimed_until = NULL, claim = NULL "
                "WHERE bank_id = $2 AND idempotency_key = $3 AND claim = $4",
                forward_after,
                bank_id,
                idempotency_key,
                claim,
            )

        await self._write(work)

    @uncancellable
    async def fail_forward(
        self, bank_id: str, idempotency_key: str, reason: str, now: datetime, claim: str
    ) -> None:
        async def work(db: Db) -> None:
            held = await db.fetchval(
                "SELECT 1 FROM forward_queue WHERE bank_id = $1 AND idempotency_key = $2 "
                "AND claim = $3 FOR UPDATE",
                bank_id,
                idempotency_key,
                claim,
            )
            if held is None:
                return  # another replica holds it now: its outcome stands
            await db.execute(
                "UPDATE issue_attempts SET state = $1, failure_reason = $2, completed_at = $3 "
                "WHERE bank_id = $4 AND idempotency_key = $5 AND state = $6",
                IssueAttemptState.FAILED.value,
                reason,
                now,
                bank_id,
                idempotency_key,
                IssueAttemptState.FORWARD_PENDING.value,
            )
            await db.execute(
                "DELETE FROM forward_queue WHERE bank_id = $1 AND idempotency_key = $2",
                bank_id,
                idempotency_key,
            )

        await self._write(work)

    @uncancellable
    async def save_window(self, window: MaintenanceWindow, recorded_at: datetime) -> None:
        async def work(db: Db) -> None:
            await _write_window(db, window, recorded_at)
            await bump_topic(db, SharedTopic.WINDOWS)

        await self._write(work)

    @uncancellable
    async def update_window(
        self, window_id: str, change: WindowChange, recorded_at: datetime
    ) -> MaintenanceWindow | None:
        async def work(db: Db) -> MaintenanceWindow | None:
            locked = await db.fetchval(
                "SELECT 1 FROM maintenance_windows WHERE window_id = $1 FOR UPDATE", window_id
            )
            if locked is None:
                return None
            row = await db.fetchrow(
                "SELECT version, snapshot FROM maintenance_window_versions "
                "WHERE window_id = $1 ORDER BY version DESC LIMIT 1",
                window_id,
            )
            assert row is not None  # every window has its first version
            current = window_from_snapshot(window_id, int(row[0]), str(row[1]))
            changed = change(current)
            if changed == current:
                return current
            window = replace(changed, version=current.version + 1)
            await _write_window(db, window, recorded_at)
            await bump_topic(db, SharedTopic.WINDOWS)
            return window

        return await self._write(work)

    async def window_versions(self) -> list[MaintenanceWindow]:
        rows = await self._rows(
            "SELECT window_id, version, snapshot FROM maintenance_window_versions "
            "ORDER BY window_id, version"
        )
        return [window_from_snapshot(row[0], int(row[1]), row[2]) for row in rows]

    @uncancellable
    async def release_issue(self, bank_id: str, idempotency_key: str, claim: str) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "DELETE FROM issue_attempts WHERE bank_id = $1 AND idempotency_key = $2 "
                "AND state = $3 AND claim = $4",
                bank_id,
                idempotency_key,
                IssueAttemptState.PENDING.value,
                claim,
            )

        await self._write(work)

    async def active_card_for_holder(self, holder_token: str) -> CardRecord | None:
        row = await self._row(
            f"SELECT {CARD_COLUMNS} FROM cards "  # noqa: S608 - constant columns
            "WHERE holder_token = $1 AND status <> 'TERMINATED'",
            holder_token,
        )
        return None if row is None else card_from(row, _as_stored)

    async def current_card_for_holder(self, holder_token: str) -> CardRecord | None:
        row = await self._row(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE holder_token = $1 "  # noqa: S608
            "ORDER BY status = 'TERMINATED', issued_at DESC LIMIT 1",
            holder_token,
        )
        return None if row is None else card_from(row, _as_stored)

    async def get_card(self, essc_id: str) -> CardRecord | None:
        row = await self._row(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE essc_id = $1",  # noqa: S608
            essc_id,
        )
        return None if row is None else card_from(row, _as_stored)

    @uncancellable
    async def set_card_status(
        self, essc_id: str, status: str, terminated_at: datetime | None = None
    ) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "UPDATE cards SET status = $1, terminated_at = COALESCE($2, terminated_at) "
                "WHERE essc_id = $3",
                status,
                terminated_at,
                essc_id,
            )

        await self._write(work)

    @uncancellable
    async def begin_factor_attempt(
        self, holder_token: str, now: datetime, max_failures: int, stale_after: timedelta
    ) -> LockoutState:
        async def work(db: Db) -> LockoutState:
            # The row first (a no-op when it exists), then its lock: concurrent guesses from
            # every replica queue on it, so reservations are counted one at a time.
            await db.execute(
                "INSERT INTO factor_failures (holder_token, consecutive_failures) "
                "VALUES ($1, 0) ON CONFLICT (holder_token) DO NOTHING",
                holder_token,
            )
            row = await db.fetchrow(
                "SELECT consecutive_failures, locked_until, in_flight, in_flight_since "
                "FROM factor_failures WHERE holder_token = $1 FOR UPDATE",
                holder_token,
            )
            assert row is not None
            failures, locked_until = int(row[0]), row[1]
            since = row[3]
            in_flight = int(row[2]) if since is not None and now - since < stale_after else 0
            if (locked_until is not None and now < locked_until) or (
                failures + in_flight >= max_failures
            ):
                return LockoutState(failures, locked_until, admitted=False)
            await db.execute(
                "UPDATE factor_failures SET in_flight = $1, in_flight_since = $2 "
                "WHERE holder_token = $3",
                in_flight + 1,
                now,
                holder_token,
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
        async def work(db: Db) -> LockoutState:
            row = await db.fetchrow(
                "UPDATE factor_failures SET in_flight = GREATEST(in_flight - 1, 0), "
                "consecutive_failures = CASE $1::boolean WHEN true THEN 0 WHEN false "
                "THEN consecutive_failures + 1 ELSE consecutive_failures END "
                "WHERE holder_token = $2 RETURNING consecutive_failures, locked_until",
                verdict,
                holder_token,
            )
            if row is None:
                return LockoutState(0, None)
            failures, locked_until = int(row[0]), row[1]
            if verdict is False and failures >= max_failures:
                locked_until = now + lock_for
                # The count restarts, so the holder gets a fresh set of tries after the lock.
                await db.execute(
                    "UPDATE factor_failures SET consecutive_failures = 0, locked_until = $1 "
                    "WHERE holder_token = $2",
                    locked_until,
                    holder_token,
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
        async def work(db: Db) -> timedelta | None:
            # One holder's sends are decided one at a time, whichever replica sends.
            await db.execute("SELECT pg_advisory_xact_lock(hashtext('sms:' || $1))", holder_token)
            await db.execute(
                "DELETE FROM sms_sends WHERE holder_token = $1 AND sent_at <= $2",
                holder_token,
                now - timedelta(days=1),
            )
            row = await db.fetchrow(
                # Both limits are the holder's, whatever the scenario.
                "SELECT max(sent_at), min(sent_at), count(*) FROM sms_sends "
                "WHERE holder_token = $1",
                holder_token,
            )
            assert row is not None
            last, oldest, count = row[0], row[1], int(row[2])
            if last is not None and now - last < min_interval:
                wait: timedelta = min_interval - (now - last)
                return wait
            if count >= daily_limit and oldest is not None:
                until_oldest_lapses: timedelta = oldest + timedelta(days=1) - now
                return until_oldest_lapses
            await db.execute(
                "INSERT INTO sms_sends (holder_token, purpose, sent_at) VALUES ($1, $2, $3)",
                holder_token,
                purpose,
                now,
            )
            return None

        return await self._write(work)

    @uncancellable
    async def forget_sms_send(self, holder_token: str, purpose: str, sent_at: datetime) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                "DELETE FROM sms_sends WHERE holder_token = $1 AND purpose = $2 AND sent_at = $3",
                holder_token,
                purpose,
                sent_at,
            )

        await self._write(work)

    async def _claim_batch(self, claims: list[NewClaim]) -> list[bool | BaseException]:
        async def run(db: Db) -> list[bool]:
            return await claim_many(db, claims)

        return list(await self._transact(run, one_statement=True))

    async def _complete_batch(self, completions: list[Completion]) -> list[bool | BaseException]:
        async def run(db: Db) -> list[bool]:
            return await complete_many(db, completions)

        try:
            return list(await self._transact(run, one_statement=True))
        except (LiveCardConflict, HolderKeyTaken):
            if len(completions) == 1:
                raise
        # One of them conflicts: each alone, so that only its own caller learns of it.
        results: list[bool | BaseException] = []
        for completion in completions:
            try:
                results.extend(await self._complete_batch([completion]))
            except (LiveCardConflict, HolderKeyTaken) as conflict:
                results.append(conflict)
        return results

    async def close(self) -> None:
        await self._claims.close()
        await self._completions.close()
        await self.stop_listening()
        await self.drain_appends()  # ledger records in flight are written, not lost
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self._pool.close()
