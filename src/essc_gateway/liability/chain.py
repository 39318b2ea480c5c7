"""The ledger's hash chain: each record's hash covers its content and the previous hash, so
an edited, removed or re-ordered row is found by recomputing. SM3 (GB/T 32905), the national
commercial hash the SSC key-management rules call for."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC

from cryptography.hazmat.primitives import hashes

from essc_gateway.liability.model import LiabilityRecord

GENESIS = "0" * 64


def canonical(record: LiabilityRecord) -> bytes:
    """Every field but the hashes, in a fixed order and encoding."""
    body = {
        "seq": record.seq,
        "request_id": record.request_id,
        "trace_id": record.trace_id,
        "bank_id": record.bank_id,
        "rpc": record.rpc,
        # In UTC whatever the zone it was made in: both stores give UTC back.
        "at": record.at.astimezone(UTC).isoformat(),
        "status_code": record.status_code,
        "reason": record.reason,
        "clause": record.clause.value,
        "evidence": dict(sorted(record.evidence.items())),
        "outage_id": record.outage_id,
        "window_id": record.window_id,
        "incident_id": record.incident_id,
        "holder_token": record.holder_token,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: str, record: LiabilityRecord) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(prev_hash.encode())
    digest.update(canonical(record))
    return digest.finalize().hex()


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    problem: str


def verify_chain(records: Iterable[LiabilityRecord]) -> list[ChainProblem]:
    """Problems found walking the chain in `seq` order; empty when it is intact."""
    problems: list[ChainProblem] = []
    prev_hash, expected_seq = GENESIS, 1
    for record in records:
        if record.seq != expected_seq:
            problems.append(
                ChainProblem(record.seq, f"rows {expected_seq}..{record.seq - 1} are missing")
            )
        if record.prev_hash != prev_hash:
            problems.append(ChainProblem(record.seq, "does not follow the previous row's hash"))
        if link(record.prev_hash, record) != record.row_hash:
            problems.append(ChainProblem(record.seq, "content does not match its hash (edited)"))
        prev_hash, expected_seq = record.row_hash, record.seq + 1
    return problems


def linked_after(
    records: Iterable[LiabilityRecord], last_seq: int, last_hash: str
) -> list[LiabilityRecord]:
    """`records` numbered and hashed as the next links after (`last_seq`, `last_hash`)."""
    linked: list[LiabilityRecord] = []
    seq, prev_hash = last_seq + 1, last_hash
    for record in records:
        numbered = replace(record, seq=seq, prev_hash=prev_hash, row_hash="")
        link_ = replace(numbered, row_hash=link(prev_hash, numbered))
        linked.append(link_)
        seq, prev_hash = seq + 1, link_.row_hash
    return linked
