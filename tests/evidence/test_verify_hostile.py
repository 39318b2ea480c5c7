"""The offline verifier against bundles a hostile signer made: entries signed by the key (the
bank is the party being checked) with every field of the wrong shape, and bundles no parser
should choke on. Each gets a verdict naming a problem; none raises."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from essc_gateway.evidence.bundle import FORMAT
from essc_gateway.evidence.merkle import Frontier, NodeId, TreeHash, plan_inclusion
from essc_gateway.evidence.signed_note import Checkpoint, NoteSigner
from essc_gateway.evidence.verify import verify_bundle

SIGNER = NoteSigner("essc-gateway/evidence", Ed25519PrivateKey.generate())
KEY = SIGNER.verifier_key()
TREE = TreeHash.SM3


def _record(**changes: Any) -> dict[str, Any]:
    record = {
        "kind": "LIABILITY_RECORD",
        "request_id": "r-1",
        "trace_id": "",
        "bank_id": "bank-a",
        "rpc": "Verify",
        "arrived_at": "2026-11-02T09:00:00+00:00",
        "answered_at": "2026-11-02T09:00:01+00:00",
        "deadline_at": None,
        "status_code": "UNAVAILABLE",
        "reason": "PLATFORM_UNAVAILABLE",
        "clause": "A16(1)(b)",
        "evidence": {"platform_reached": "true"},
        "attempts": [],
        "outage_id": None,
        "window_id": None,
        "window_version": None,
        "incident_id": None,
        "holder_token": None,
    }
    return record | changes


def signed_bundle(*bodies: bytes, requests: tuple[str, ...] = ("r-1",)) -> bytes:
    """A bundle of `bodies` with true proofs under a checkpoint the key really signed."""
    frontier = Frontier(TREE)
    leaves = [TREE.leaf(body) for body in bodies]
    nodes: dict[NodeId, bytes] = {NodeId(0, i): leaf for i, leaf in enumerate(leaves)}
    for leaf in leaves:
        nodes.update(frontier.append(leaf))
    size = len(bodies)
    note = SIGNER.sign(Checkpoint("essc-gateway/evidence", size, frontier.root()).body())
    entries = []
    for index, body in enumerate(bodies):
        plan = plan_inclusion(index, size)
        proof = plan.assemble(nodes, TREE)
        entries.append(
            {
                "index": index,
                "body": body.decode(),
                "proof": [base64.b64encode(h).decode() for h in proof],
            }
        )
    return json.dumps(
        {
            "format": FORMAT,
            "tree_hash": TREE.value,
            "checkpoint": note.decode(),
            "requests": list(requests),
            "entries": entries,
            "consistency": [],
        }
    ).encode()


def body(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def test_an_honest_signed_record_verifies() -> None:
    verdict = verify_bundle(signed_bundle(body(_record())), KEY)
    assert verdict.problems == []
    assert [r.clause.value for r in verdict.requests] == ["A16(1)(b)"]


@pytest.mark.parametrize(
    "changes",
    [
        {"outage_id": ["o-1"]},
        {"window_id": {"w": 1}},
        {"incident_id": 7},
        {"window_version": "2"},
        {"window_version": True},
        {"evidence": ["not", "an", "object"]},
        {"attempts": [{"operation": "x"}]},
        {"arrived_at": "yesterday"},
        {"arrived_at": "0001-01-01T00:00:00+00:00", "window_id": "w-1", "window_version": 1},
        {"clause": "A16(9)"},
        {"clause": "A16(2)"},
        {"clause": "A16(1)(a)"},
        {"evidence": {"window_min_notice_s": "²"}, "window_id": "w-1"},
    ],
)
def test_a_signed_record_of_the_wrong_shape_gets_a_verdict(changes: dict[str, Any]) -> None:
    verdict = verify_bundle(signed_bundle(body(_record(**changes))), KEY)
    assert not verdict.ok


def test_two_records_for_one_request_are_flagged() -> None:
    twice = signed_bundle(body(_record()), body(_record(clause="BANK")))
    assert any("two records" in p for p in verify_bundle(twice, KEY).problems)


def test_an_amendment_of_a_failure_no_incident_covers_is_flagged() -> None:
    holder_fault = _record(clause="A16(2)", reason="FACTOR_REJECTED", evidence={})
    incident = {
        "kind": "INCIDENT",
        "incident_id": "in-1",
        "incident_kind": "TYPHOON",
        "starts_at": "2026-11-02T08:00:00+00:00",
        "ends_at": "2026-11-02T10:00:00+00:00",
        "declared_at": "2026-11-02T09:30:00+00:00",
        "declared_by": "ops",
        "description": "typhoon",
    }
    amendment = {
        "kind": "AMENDMENT",
        "amendment_id": "am-1",
        "request_id": "r-1",
        "clause": "A16(1)(c)",
        "previous_clause": "A16(2)",
        "cause": "INCIDENT_DECLARED",
        "incident_id": "in-1",
        "declared_by": "ops",
        "declared_at": "2026-11-02T09:30:00+00:00",
        "amended_at": "2026-11-02T09:30:00+00:00",
    }
    verdict = verify_bundle(signed_bundle(body(holder_fault), body(incident), body(amendment)), KEY)
    assert any("no incident covers" in p for p in verdict.problems)


@pytest.mark.parametrize(
    "bundle",
    [
        b"[" * 200_000,
        b'{"format": "essc-evidence-bundle/1", "entries": [{"index": Infinity}]}',
        b'{"format": "essc-evidence-bundle/1", "tree_hash": "sm3", "checkpoint": 5}',
        b"\xff\xfe\x00",
    ],
)
def test_bundles_no_parser_should_choke_on(bundle: bytes) -> None:
    assert not verify_bundle(bundle, KEY).ok


def test_a_signed_bundle_with_a_float_index_or_size() -> None:
    data = json.loads(signed_bundle(body(_record())))
    data["entries"][0]["index"] = 0.0
    data["consistency"] = [{"old_size": 1e300, "proof": []}]
    assert not verify_bundle(json.dumps(data).encode(), KEY).ok
