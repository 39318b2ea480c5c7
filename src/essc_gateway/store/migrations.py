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
)
