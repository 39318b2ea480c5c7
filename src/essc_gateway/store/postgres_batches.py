"""The two writes of every Issue, group-committed on PostgreSQL (see `coalescing`): new keys
claimed (durable), and issuances completed with their card (lazy), many per statement over
arrays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from essc_gateway.keys.model import WrappedHolderKey
from essc_gateway.store.base import CardRecord, IssueAttemptState
from essc_gateway.store.postgres_errors import live_card_conflict
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import CARD_COLUMNS


@dataclass(frozen=True, slots=True)
class NewClaim:
    bank_id: str
    idempotency_key: str
    fingerprint: str
    now: datetime
    lease_until: datetime
    draft_sealed: bytes | None
    token: str


@dataclass(frozen=True, slots=True)
class Completion:
    bank_id: str
    idempotency_key: str
    outcome: str
    essc_id: str
    card: CardRecord
    now: datetime
    claim: str
    holder_key: WrappedHolderKey | None = None
    expected_key: str | None = None
    """The stored holder key the card is sealed under (None: a new key, or not checked)."""


_CLAIM_MANY = (
    "INSERT INTO issue_attempts (bank_id, idempotency_key, fingerprint, state, created_at, "
    "lease_until, draft_sealed, claim) SELECT b, k, f, $4, c, l, d, t FROM unnest($1::text[], "
    "$2::text[], $3::text[], $5::timestamptz[], $6::timestamptz[], $7::bytea[], $8::text[]) "
    "AS u(b, k, f, c, l, d, t) ON CONFLICT DO NOTHING RETURNING claim"
)

_CARD_ARRAYS = (
    "$5::text[], $6::text[], $7::text[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], "
    "$12::text[], $13::timestamptz[], $14::text[], $15::timestamptz[], $16::text[], "
    "$17::bytea[], $18::text[], $19::timestamptz[]"
)
_CARD_NAMES = CARD_COLUMNS.replace(" ", "")
_CARD_FROM_INPUT = ", ".join(f"i.{name}" for name in CARD_COLUMNS.split(", "))
_COMPLETE_MANY = (
    # The attempts still held by their claims first; their cards then (a CTE sees another's
    # RETURNING rows): a key taken over meanwhile writes nothing.
    "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "  # noqa: S608
    f"$20::timestamptz[], $21::text[], {_CARD_ARRAYS}, $24::text[], $25::integer[], "
    "$26::bytea[], $27::timestamptz[], $28::text[]) AS i(a_bank, a_key, a_outcome, a_essc, "
    f"a_at, a_claim, {_CARD_NAMES}, h_key, h_version, h_wrapped, h_at, h_expect) "
    # Lazy (see Store.complete_issue): this statement's own transaction commits without
    # waiting for the WAL flush. set_config(..., true) lasts until that commit, which reads
    # it; one statement, so no BEGIN, SET LOCAL and COMMIT round trips. In a sub-select it
    # runs once per statement (per row, it cost 256 writers a quarter of their rate).
    "WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off'), "
    # The stored keys cards are sealed under, still their holders': locked until commit (a
    # key job replacing one waits, then sees the card). One replaced: that completion is
    # not done here, and alone it learns HolderKeyTaken.
    "held AS (SELECT i.a_bank, i.a_key FROM input i JOIN holder_keys k ON "
    "k.bank_id = i.bank_id AND k.holder_token = i.holder_token AND k.key_id = i.h_expect "
    "FOR SHARE OF k), "
    "done AS (UPDATE issue_attempts a SET state = $22, outcome = i.a_outcome, "
    "essc_id = i.a_essc, completed_at = i.a_at, draft_sealed = NULL, claim = NULL FROM input i "
    "WHERE a.bank_id = i.a_bank AND a.idempotency_key = i.a_key AND a.state = $23 "
    "AND a.claim = i.a_claim AND (i.h_expect IS NULL OR EXISTS (SELECT 1 FROM held h "
    "WHERE h.a_bank = i.a_bank AND h.a_key = i.a_key)) RETURNING a.bank_id, a.idempotency_key), "
    f"card AS (INSERT INTO cards ({CARD_COLUMNS}) SELECT {_CARD_FROM_INPUT} "
    "FROM input i JOIN done d ON d.bank_id = i.a_bank AND d.idempotency_key = i.a_key "
    "ON CONFLICT (essc_id) DO NOTHING), "
    # A first card's holder key; one stored meanwhile fails it all (HolderKeyTaken).
    "hk AS (INSERT INTO holder_keys (bank_id, holder_token, key_id, data_version, wrapped, "
    "created_at) SELECT i.bank_id, i.holder_token, i.h_key, i.h_version, i.h_wrapped, i.h_at "
    "FROM input i JOIN done d ON d.bank_id = i.a_bank AND d.idempotency_key = i.a_key "
    "WHERE i.h_key IS NOT NULL) "
    "SELECT bank_id, idempotency_key FROM done"
)


async def claim_many(db: Db, claims: list[NewClaim]) -> list[bool]:
    """Inserts the new keys; for each, whether its claim won (False: the key is in use)."""
    rows = await db.fetch(
        _CLAIM_MANY,
        [c.bank_id for c in claims],
        [c.idempotency_key for c in claims],
        [c.fingerprint for c in claims],
        IssueAttemptState.PENDING.value,
        [c.now for c in claims],
        [c.lease_until for c in claims],
        [c.draft_sealed for c in claims],
        [c.token for c in claims],
    )
    won = {row["claim"] for row in rows}
    return [c.token in won for c in claims]


async def complete_many(db: Db, completions: list[Completion]) -> list[bool]:
    """Completes the attempts their claims still hold, with their cards; for each, whether
    it was completed now. A second live card of a holder fails the whole statement
    (`LiveCardConflict`): the caller then completes them one by one. Lazy (see
    Store.complete_issue): run it as a transaction of its own, or it makes the caller's
    whole transaction lazy."""
    cards = [c.card for c in completions]
    with live_card_conflict():
        rows = await db.fetch(
            _COMPLETE_MANY,
            [c.bank_id for c in completions],
            [c.idempotency_key for c in completions],
            [c.outcome for c in completions],
            [c.essc_id for c in completions],
            *([getattr(card, name) for card in cards] for name in CARD_COLUMNS.split(", ")),
            [c.now for c in completions],
            [c.claim for c in completions],
            IssueAttemptState.COMPLETED.value,
            IssueAttemptState.PENDING.value,
            [c.holder_key.key_id if c.holder_key else None for c in completions],
            [c.holder_key.data_version if c.holder_key else None for c in completions],
            [c.holder_key.wrapped if c.holder_key else None for c in completions],
            [c.holder_key.created_at if c.holder_key else None for c in completions],
            [c.expected_key for c in completions],
        )
    done = {(row["bank_id"], row["idempotency_key"]) for row in rows}
    return [(c.bank_id, c.idempotency_key) in done for c in completions]
