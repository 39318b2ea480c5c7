"""The PostgreSQL schema, as versioned migrations applied in order under an advisory lock.

The same tables as SQLite's (`migrations.py`) with PostgreSQL's types: times are
`timestamptz`, sealed fields `bytea`. JSON stays text: the ledger hashes what it wrote.
`schema_version` holds the last migration applied. Never edit a released migration: add
the next one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from essc_gateway.store.base import StoreError

if TYPE_CHECKING:  # generic in the stubs only
    Db: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    """A connection of the store's pool."""
else:
    Db = PoolConnectionProxy

MIGRATIONS: tuple[str, ...] = (
    # 1: everything SQLite has after its migration 5.
    """
    CREATE TABLE cards (
        essc_id text PRIMARY KEY,
        bank_id text NOT NULL,
        holder_token text NOT NULL,
        name_sealed bytea NOT NULL,
        id_number_sealed bytea NOT NULL,
        phone_sealed bytea NOT NULL,
        card_number_sealed bytea NOT NULL,
        status text NOT NULL,
        issued_at timestamptz NOT NULL,
        consent_version text NOT NULL,
        consent_accepted_at timestamptz NOT NULL,
        consent_channel text NOT NULL,
        guardian_sealed bytea,
        guardian_relation text,
        terminated_at timestamptz
    );
    -- A3: one person, one e-SSC, whichever bank issued it.
    CREATE UNIQUE INDEX cards_one_live_card_per_holder
        ON cards (holder_token) WHERE status <> 'TERMINATED';
    CREATE INDEX cards_by_bank ON cards (bank_id);
    CREATE INDEX cards_by_holder ON cards (holder_token, issued_at);
    CREATE TABLE issue_attempts (
        bank_id text NOT NULL,
        idempotency_key text NOT NULL,
        fingerprint text NOT NULL,
        state text NOT NULL,
        created_at timestamptz NOT NULL,
        outcome text,
        essc_id text REFERENCES cards (essc_id),
        failure_reason text,
        completed_at timestamptz,
        draft_sealed bytea,
        lease_until timestamptz,
        claim text,
        PRIMARY KEY (bank_id, idempotency_key)
    );
    CREATE INDEX issue_attempts_unsettled ON issue_attempts (state, lease_until);
    CREATE TABLE factor_failures (
        holder_token text PRIMARY KEY,
        consecutive_failures integer NOT NULL,
        locked_until timestamptz,
        in_flight integer NOT NULL DEFAULT 0,
        in_flight_since timestamptz
    );
    CREATE TABLE maintenance_windows (
        window_id text PRIMARY KEY,
        kind text NOT NULL,
        starts_at timestamptz NOT NULL,
        ends_at timestamptz NOT NULL,
        rpcs text NOT NULL,
        reason text NOT NULL,
        announced_at timestamptz NOT NULL,
        amended_at timestamptz,
        cancelled_at timestamptz,
        version integer NOT NULL
    );
    -- Append-only: what was announced when, for the liability evidence (A16(1)(a)).
    CREATE TABLE maintenance_window_versions (
        window_id text NOT NULL REFERENCES maintenance_windows (window_id),
        version integer NOT NULL,
        recorded_at timestamptz NOT NULL,
        snapshot text NOT NULL,
        PRIMARY KEY (window_id, version)
    );
    CREATE TABLE sms_sends (
        holder_token text NOT NULL,
        purpose text NOT NULL,
        sent_at timestamptz NOT NULL
    );
    CREATE INDEX sms_sends_by_holder ON sms_sends (holder_token, sent_at);
    CREATE TABLE forward_queue (
        bank_id text NOT NULL,
        idempotency_key text NOT NULL,
        payload_sealed bytea NOT NULL,
        accepted_at timestamptz NOT NULL,
        forward_after timestamptz NOT NULL,
        tries integer NOT NULL DEFAULT 0,
        claimed_until timestamptz,
        claim text,
        PRIMARY KEY (bank_id, idempotency_key),
        FOREIGN KEY (bank_id, idempotency_key)
            REFERENCES issue_attempts (bank_id, idempotency_key)
    );
    CREATE TABLE liability_records (
        seq bigint PRIMARY KEY,
        request_id text NOT NULL UNIQUE,
        trace_id text NOT NULL,
        bank_id text NOT NULL,
        rpc text NOT NULL,
        at timestamptz NOT NULL,
        status_code text NOT NULL,
        reason text NOT NULL,
        clause text NOT NULL,
        evidence text NOT NULL,
        outage_id text,
        window_id text,
        incident_id text,
        holder_token text,
        prev_hash text NOT NULL,
        row_hash text NOT NULL
    );
    CREATE INDEX liability_by_bank ON liability_records (bank_id, at);
    CREATE INDEX liability_by_holder ON liability_records (holder_token, at);
    -- The chain's head, one row: appenders of every replica lock it in turn, so the chain
    -- has one sequence, no fork and no gap.
    CREATE TABLE ledger_head (
        id integer PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        row_hash text NOT NULL
    );
    INSERT INTO ledger_head (id, seq, row_hash) VALUES (1, 0, repeat('0', 64));
    CREATE TABLE outages (
        outage_id text PRIMARY KEY,
        scope text NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at timestamptz,
        reached boolean NOT NULL,
        last_failure_at timestamptz NOT NULL,
        status_counts text NOT NULL,
        affected text NOT NULL,
        clause text NOT NULL
    );
    CREATE TABLE incidents (
        incident_id text PRIMARY KEY,
        kind text NOT NULL,
        starts_at timestamptz NOT NULL,
        ends_at timestamptz NOT NULL,
        declared_at timestamptz NOT NULL,
        description text NOT NULL
    );
    CREATE TABLE request_counts (
        bank_id text NOT NULL,
        day text NOT NULL,
        requests bigint NOT NULL,
        failed bigint NOT NULL,
        PRIMARY KEY (bank_id, day)
    );
    CREATE TABLE write_probe (id integer PRIMARY KEY, at timestamptz NOT NULL);
    """,
    # 2: state shared by the replicas of a cluster.
    """
    CREATE TABLE shared_state (topic text PRIMARY KEY, version bigint NOT NULL);
    CREATE TABLE forced_circuits (
        operation text PRIMARY KEY,
        forced_until timestamptz NOT NULL,
        forced_at timestamptz NOT NULL
    );
    CREATE TABLE replicas (
        replica_id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        address text NOT NULL,
        version text NOT NULL,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL
    );
    CREATE TABLE rate_buckets (
        bank_id text PRIMARY KEY,
        tokens double precision NOT NULL,
        updated_at timestamptz NOT NULL
    );
    ALTER TABLE outages ADD COLUMN held_by text;
    -- Keep the latest open outage per operation (one per replica were possible before).
    UPDATE outages o SET ended_at = last_failure_at WHERE ended_at IS NULL AND EXISTS (
        SELECT 1 FROM outages n WHERE n.scope = o.scope AND n.ended_at IS NULL
        AND (n.started_at, n.outage_id) > (o.started_at, o.outage_id));
    CREATE UNIQUE INDEX outages_one_open_per_scope ON outages (scope) WHERE ended_at IS NULL;
    """,
    # 3: the evidence log (a Merkle tree over every fact a clause rests on, with signed
    # checkpoints), amendment records, and what a liability record now holds.
    """
    CREATE TABLE evidence_head (
        id integer PRIMARY KEY CHECK (id = 1),
        tree_hash text,
        frontier bytea NOT NULL
    );
    INSERT INTO evidence_head (id, tree_hash, frontier) VALUES (1, NULL, '\\x0000000000000000');
    CREATE TABLE evidence_log (
        idx bigint PRIMARY KEY,
        kind text NOT NULL,
        ref text NOT NULL,
        body bytea NOT NULL,
        leaf_hash bytea NOT NULL
    );
    -- Liability records are found through their own table's log_index: one index less on
    -- the hot append.
    CREATE INDEX evidence_log_by_ref ON evidence_log (kind, ref)
        WHERE kind != 'LIABILITY_RECORD';
    CREATE TABLE evidence_nodes (
        level integer NOT NULL,
        idx bigint NOT NULL,
        hash bytea NOT NULL,
        PRIMARY KEY (level, idx)
    );
    CREATE TABLE evidence_checkpoints (
        tree_size bigint PRIMARY KEY,
        root bytea NOT NULL,
        note bytea NOT NULL,
        published_at timestamptz NOT NULL
    );
    CREATE TABLE liability_amendments (
        amendment_id text PRIMARY KEY,
        request_id text NOT NULL REFERENCES liability_records (request_id),
        incident_id text,
        clause text NOT NULL,
        previous_clause text NOT NULL,
        cause text NOT NULL,
        declared_by text NOT NULL,
        declared_at timestamptz NOT NULL,
        amended_at timestamptz NOT NULL,
        log_index bigint NOT NULL,
        UNIQUE (request_id, incident_id)
    );
    ALTER TABLE liability_records ADD COLUMN arrived_at timestamptz,
        ADD COLUMN deadline_at timestamptz,
        ADD COLUMN attempts text NOT NULL DEFAULT '[]',
        ADD COLUMN window_version integer,
        ADD COLUMN log_index bigint;
    UPDATE liability_records SET arrived_at = at WHERE arrived_at IS NULL;
    CREATE INDEX liability_by_arrival ON liability_records (arrived_at);
    ALTER TABLE incidents ADD COLUMN declared_by text NOT NULL DEFAULT '';
    """,
    # 9: the keys below the root (K2), each wrapped by its parent; never in clear.
    """
    CREATE TABLE managed_keys (
        bank_id text NOT NULL,
        purpose text NOT NULL,
        version integer NOT NULL,
        suite smallint NOT NULL,
        wrapped bytea NOT NULL,
        parent_version integer,
        state text NOT NULL,
        created_at timestamptz NOT NULL,
        created_by text NOT NULL,
        PRIMARY KEY (bank_id, purpose, version)
    );
    """,
    # 10: one key per holder and bank, sealed by the bank's DATA key (A14: erasure).
    """
    CREATE TABLE holder_keys (
        bank_id text NOT NULL,
        holder_token text NOT NULL,
        key_id text NOT NULL UNIQUE,
        data_version integer NOT NULL,
        wrapped bytea NOT NULL,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (bank_id, holder_token)
    );
    """,
    # 11: jobs moving holder keys to a new DATA key version (once across replicas).
    """
    CREATE TABLE key_jobs (
        job_id text PRIMARY KEY,
        bank_id text NOT NULL,
        target_version integer NOT NULL,
        rekey boolean NOT NULL,
        done integer NOT NULL,
        total integer NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        holder text,
        lease_until timestamptz
    );
    """,
    # 12: key exports and destructions, asked by one operator, approved by another (K5).
    """
    CREATE TABLE key_actions (
        action_id text PRIMARY KEY,
        kind text NOT NULL,
        bank_id text NOT NULL,
        purpose text NOT NULL,
        version integer NOT NULL,
        recipient_public_key text NOT NULL,
        requested_by text NOT NULL,
        requested_at timestamptz NOT NULL,
        approved_by text,
        approved_at timestamptz
    );
    """,
    # 13: key jobs that file rows again under a new lookup key version.
    """
    ALTER TABLE key_jobs ADD COLUMN purpose text NOT NULL DEFAULT 'DATA';
    """,
    # 14: what ties a liability record to its holder, outside the evidence (A14: erasure
    # deletes it; records written before name the lookup token itself, salt NULL), and
    # disclosures (A13(2)).
    """
    CREATE TABLE holder_links (
        request_id text PRIMARY KEY,
        bank_id text NOT NULL,
        holder_token text NOT NULL,
        salt bytea
    );
    CREATE INDEX holder_links_by_holder ON holder_links (bank_id, holder_token);
    INSERT INTO holder_links (request_id, bank_id, holder_token, salt)
        SELECT request_id, bank_id, holder_token, NULL FROM liability_records
        WHERE holder_token IS NOT NULL;
    -- Disclosures of a holder's data to third parties (A13(2)), found by the holder.
    CREATE TABLE disclosures (
        disclosure_id text PRIMARY KEY,
        bank_id text NOT NULL,
        holder_token text NOT NULL,
        holder_ref text NOT NULL,
        at timestamptz NOT NULL,
        operator text NOT NULL,
        recipient text NOT NULL,
        ground text NOT NULL,
        reference text NOT NULL,
        fields text NOT NULL
    );
    CREATE INDEX disclosures_by_holder ON disclosures (bank_id, holder_token);
    -- Erasures of many holders (a bank stopping the service, retention), resumable.
    CREATE TABLE erasure_jobs (
        job_id text PRIMARY KEY,
        kind text NOT NULL,
        bank_id text NOT NULL,
        reference text NOT NULL,
        operator text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        erased bigint NOT NULL DEFAULT 0,
        waiting bigint NOT NULL DEFAULT 0,
        holder text,
        lease_until timestamptz
    );
    """,
    # 15: as SQLite's 15.
    """
    CREATE TABLE erasure_marks (
        bank_id text PRIMARY KEY,
        erased_at timestamptz NOT NULL
    );
    ALTER TABLE disclosures ADD COLUMN salt bytea;
    CREATE INDEX evidence_log_access ON evidence_log (idx) WHERE kind = 'OPERATOR_ACCESS';
    """,
)

# pg_advisory_xact_lock's key space is shared by everything on the server: a constant of
# ours, combined with the schema so that schemas of one database migrate independently.
_MIGRATION_LOCK = 0x655F7373  # "e_ss"


async def migrate(connection: Db, then: Callable[[Db], Awaitable[object]] | None = None) -> None:
    """Brings the schema up to date, once, however many replicas start at the same moment:
    each takes the advisory lock in turn and sees what the one before it applied. `then`
    runs after, under the same lock and in the same transaction."""
    async with connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _MIGRATION_LOCK
        )
        if await connection.fetchval("SELECT current_schema()") is None:
            raise StoreError("the schema that search_path names does not exist")
        await connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer)")
        applied = await connection.fetchval("SELECT max(version) FROM schema_version") or 0
        if applied > len(MIGRATIONS):
            raise StoreError("database schema is newer than this gateway")
        for version, script in enumerate(MIGRATIONS[applied:], start=applied + 1):
            await connection.execute(script)
            await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        if then is not None:
            await then(connection)
