"""Schema migrations, applied in order; `PRAGMA user_version` records the last one applied.
Never edit a released migration: add the next one."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: cards, issuance idempotency, factor lockouts.
    """
    CREATE TABLE cards (
        essc_id TEXT PRIMARY KEY,
        bank_id TEXT NOT NULL,
        holder_token TEXT NOT NULL,
        name_sealed BLOB NOT NULL,
        id_number_sealed BLOB NOT NULL,
        phone_sealed BLOB NOT NULL,
        card_number_sealed BLOB NOT NULL,
        status TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        consent_version TEXT NOT NULL,
        consent_accepted_at TEXT NOT NULL,
        consent_channel TEXT NOT NULL,
        guardian_sealed BLOB,
        guardian_relation TEXT,
        terminated_at TEXT
    );
    -- A3: one person, one e-SSC, whichever bank issued it.
    CREATE UNIQUE INDEX cards_one_live_card_per_holder
        ON cards (holder_token) WHERE status != 'TERMINATED';
    CREATE INDEX cards_by_bank ON cards (bank_id);
    CREATE TABLE issue_attempts (
        bank_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        outcome TEXT,
        essc_id TEXT REFERENCES cards (essc_id),
        PRIMARY KEY (bank_id, idempotency_key)
    );
    CREATE TABLE factor_failures (
        holder_token TEXT PRIMARY KEY,
        consecutive_failures INTEGER NOT NULL,
        locked_until TEXT
    );
    """,
    # 2: maintenance windows with every version kept; store-and-forward issuance.
    """
    CREATE TABLE maintenance_windows (
        window_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        rpcs TEXT NOT NULL,
        reason TEXT NOT NULL,
        announced_at TEXT NOT NULL,
        amended_at TEXT,
        cancelled_at TEXT,
        version INTEGER NOT NULL
    );
    -- Append-only: what was announced when, for the liability evidence (A16(1)(a)).
    CREATE TABLE maintenance_window_versions (
        window_id TEXT NOT NULL REFERENCES maintenance_windows (window_id),
        version INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        PRIMARY KEY (window_id, version)
    );
    ALTER TABLE issue_attempts ADD COLUMN failure_reason TEXT;
    -- Factor checks in flight count towards the lockout (concurrent guesses).
    ALTER TABLE factor_failures ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE factor_failures ADD COLUMN in_flight_since TEXT;
    ALTER TABLE issue_attempts ADD COLUMN completed_at TEXT;
    -- SMS codes sent per holder, to throttle resends (not the codes: the platform has them).
    CREATE TABLE sms_sends (
        holder_token TEXT NOT NULL,
        purpose TEXT NOT NULL,
        sent_at TEXT NOT NULL
    );
    CREATE INDEX sms_sends_by_holder ON sms_sends (holder_token, sent_at);
    CREATE TABLE forward_queue (
        bank_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        payload_sealed BLOB NOT NULL,
        accepted_at TEXT NOT NULL,
        forward_after TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (bank_id, idempotency_key),
        FOREIGN KEY (bank_id, idempotency_key)
            REFERENCES issue_attempts (bank_id, idempotency_key)
    );
    """,
    # 3: the liability ledger (hash-chained), outages, incidents, request counts.
    """
    CREATE TABLE liability_records (
        seq INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE,
        trace_id TEXT NOT NULL,
        bank_id TEXT NOT NULL,
        rpc TEXT NOT NULL,
        at TEXT NOT NULL,
        status_code TEXT NOT NULL,
        reason TEXT NOT NULL,
        clause TEXT NOT NULL,
        evidence TEXT NOT NULL,
        outage_id TEXT,
        window_id TEXT,
        incident_id TEXT,
        holder_token TEXT,
        prev_hash TEXT NOT NULL,
        row_hash TEXT NOT NULL
    );
    CREATE INDEX liability_by_bank ON liability_records (bank_id, at);
    CREATE INDEX liability_by_holder ON liability_records (holder_token, at);
    CREATE TABLE outages (
        outage_id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        reached INTEGER NOT NULL,
        last_failure_at TEXT NOT NULL,
        status_counts TEXT NOT NULL,
        affected TEXT NOT NULL,
        clause TEXT NOT NULL
    );
    CREATE TABLE incidents (
        incident_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        declared_at TEXT NOT NULL,
        description TEXT NOT NULL
    );
    CREATE TABLE request_counts (
        bank_id TEXT NOT NULL,
        day TEXT NOT NULL,
        requests INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        PRIMARY KEY (bank_id, day)
    );
    """,
    # 4: a holder's cards, terminated ones included (the answer after Terminate, A12).
    """
    CREATE INDEX cards_by_holder ON cards (holder_token, issued_at);
    """,
    # 5: an issuance in doubt is settled from what it asked (the sealed draft), and a claim
    # lasts as long as its request may run (the lease), not a fixed minute.
    """
    ALTER TABLE issue_attempts ADD COLUMN draft_sealed BLOB;
    ALTER TABLE issue_attempts ADD COLUMN lease_until TEXT;
    ALTER TABLE issue_attempts ADD COLUMN claim TEXT;
    CREATE INDEX issue_attempts_unsettled ON issue_attempts (state, lease_until);
    -- One row rewritten to learn whether the store writes again after a failure.
    CREATE TABLE write_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
    """,
    # 6: a queued issuance is claimed by one forwarder at a time, for a lease.
    """
    ALTER TABLE forward_queue ADD COLUMN claimed_until TEXT;
    ALTER TABLE forward_queue ADD COLUMN claim TEXT;
    """,
    # 7: state shared by the replicas of a cluster (workers of one host, here).
    """
    CREATE TABLE shared_state (topic TEXT PRIMARY KEY, version INTEGER NOT NULL);
    CREATE TABLE forced_circuits (
        operation TEXT PRIMARY KEY,
        forced_until TEXT NOT NULL,
        forced_at TEXT NOT NULL
    );
    CREATE TABLE replicas (
        replica_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        address TEXT NOT NULL,
        version TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    );
    CREATE TABLE rate_buckets (
        bank_id TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        updated_at TEXT NOT NULL
    );
    ALTER TABLE outages ADD COLUMN held_by TEXT;
    -- Workers used to open one outage each: keep the latest open one per operation.
    UPDATE outages SET ended_at = last_failure_at WHERE ended_at IS NULL AND rowid NOT IN
        (SELECT MAX(rowid) FROM outages WHERE ended_at IS NULL GROUP BY scope);
    CREATE UNIQUE INDEX outages_one_open_per_scope ON outages (scope) WHERE ended_at IS NULL;
    """,
    # 8: the evidence log (a Merkle tree over every fact a clause rests on, with signed
    # checkpoints), amendment records, and what a liability record now holds.
    """
    CREATE TABLE evidence_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tree_hash TEXT,
        frontier BLOB NOT NULL
    );
    INSERT INTO evidence_head (id, tree_hash, frontier) VALUES (1, NULL, zeroblob(8));
    CREATE TABLE evidence_log (
        idx INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        body BLOB NOT NULL,
        leaf_hash BLOB NOT NULL
    );
    -- Liability records are found through their own table's log_index: one index less on
    -- the hot append.
    CREATE INDEX evidence_log_by_ref ON evidence_log (kind, ref)
        WHERE kind != 'LIABILITY_RECORD';
    -- Complete subtrees of level >= 1: a proof reads O(log n) of them.
    CREATE TABLE evidence_nodes (
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TABLE evidence_checkpoints (
        tree_size INTEGER PRIMARY KEY,
        root BLOB NOT NULL,
        note BLOB NOT NULL,
        published_at TEXT NOT NULL
    );
    CREATE TABLE liability_amendments (
        amendment_id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL REFERENCES liability_records (request_id),
        incident_id TEXT,
        clause TEXT NOT NULL,
        previous_clause TEXT NOT NULL,
        cause TEXT NOT NULL,
        declared_by TEXT NOT NULL,
        declared_at TEXT NOT NULL,
        amended_at TEXT NOT NULL,
        log_index INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX amendments_once_per_incident
        ON liability_amendments (request_id, incident_id);
    ALTER TABLE liability_records ADD COLUMN arrived_at TEXT;
    ALTER TABLE liability_records ADD COLUMN deadline_at TEXT;
    ALTER TABLE liability_records ADD COLUMN attempts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE liability_records ADD COLUMN window_version INTEGER;
    ALTER TABLE liability_records ADD COLUMN log_index INTEGER;
    UPDATE liability_records SET arrived_at = at WHERE arrived_at IS NULL;
    CREATE INDEX liability_by_arrival ON liability_records (arrived_at);
    ALTER TABLE incidents ADD COLUMN declared_by TEXT NOT NULL DEFAULT '';
    """,
    # 9: the keys below the root (K2), each wrapped by its parent; never in clear.
    """
    CREATE TABLE managed_keys (
        bank_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        version INTEGER NOT NULL,
        suite INTEGER NOT NULL,
        wrapped BLOB NOT NULL,
        parent_version INTEGER,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (bank_id, purpose, version)
    );
    """,
    # 10: one key per holder and bank, sealed by the bank's DATA key (A14: erasure).
    """
    CREATE TABLE holder_keys (
        bank_id TEXT NOT NULL,
        holder_token TEXT NOT NULL,
        key_id TEXT NOT NULL UNIQUE,
        data_version INTEGER NOT NULL,
        wrapped BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (bank_id, holder_token)
    );
    """,
    # 11: jobs moving holder keys to a new DATA key version (once across replicas).
    """
    CREATE TABLE key_jobs (
        job_id TEXT PRIMARY KEY,
        bank_id TEXT NOT NULL,
        target_version INTEGER NOT NULL,
        rekey INTEGER NOT NULL,
        done INTEGER NOT NULL,
        total INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        holder TEXT,
        lease_until TEXT
    );
    """,
    # 12: key exports and destructions, asked by one operator, approved by another (K5).
    """
    CREATE TABLE key_actions (
        action_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        bank_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        version INTEGER NOT NULL,
        recipient_public_key TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        approved_by TEXT,
        approved_at TEXT
    );
    """,
    # 13: key jobs that file rows again under a new lookup key version.
    """
    ALTER TABLE key_jobs ADD COLUMN purpose TEXT NOT NULL DEFAULT 'DATA';
    """,
    # 14: what ties a liability record to its holder, outside the evidence (A14: erasure
    # deletes it; records written before name the lookup token itself, salt NULL), and
    # disclosures (A13(2)).
    """
    CREATE TABLE holder_links (
        request_id TEXT PRIMARY KEY,
        bank_id TEXT NOT NULL,
        holder_token TEXT NOT NULL,
        salt BLOB
    );
    CREATE INDEX holder_links_by_holder ON holder_links (bank_id, holder_token);
    INSERT INTO holder_links (request_id, bank_id, holder_token, salt)
        SELECT request_id, bank_id, holder_token, NULL FROM liability_records
        WHERE holder_token IS NOT NULL;
    -- Disclosures of a holder's data to third parties (A13(2)), found by the holder.
    CREATE TABLE disclosures (
        disclosure_id TEXT PRIMARY KEY,
        bank_id TEXT NOT NULL,
        holder_token TEXT NOT NULL,
        holder_ref TEXT NOT NULL,
        at TEXT NOT NULL,
        operator TEXT NOT NULL,
        recipient TEXT NOT NULL,
        ground TEXT NOT NULL,
        reference TEXT NOT NULL,
        fields TEXT NOT NULL
    );
    CREATE INDEX disclosures_by_holder ON disclosures (bank_id, holder_token);
    -- Erasures of many holders (a bank stopping the service, retention), resumable.
    CREATE TABLE erasure_jobs (
        job_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        bank_id TEXT NOT NULL,
        reference TEXT NOT NULL,
        operator TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        erased INTEGER NOT NULL DEFAULT 0,
        waiting INTEGER NOT NULL DEFAULT 0,
        holder TEXT,
        lease_until TEXT
    );
    """,
    # 15: each bank's last erasure (a record that arrived before it gets no holder link when
    # appended after it), the disclosure's salt (opens its holder_ref for the holder), the
    # access log listed by index without scanning the hot entries.
    """
    CREATE TABLE erasure_marks (
        bank_id TEXT PRIMARY KEY,
        erased_at TEXT NOT NULL
    );
    ALTER TABLE disclosures ADD COLUMN salt BLOB;
    CREATE INDEX evidence_log_access ON evidence_log (idx) WHERE kind = 'OPERATOR_ACCESS';
    """,
)
