"""The offline verifier of evidence bundles: no database, no gateway, only the bundle, the
bank's public verifier key and any checkpoints the reader kept. It checks that

- the bundle's checkpoint is signed by the key;
- every entry is in the log of that checkpoint (its inclusion proof), so none was edited;
- the log of every checkpoint the reader kept is a prefix of it (consistency proofs), so no
  history was rewritten, not even a whole rechained ledger;
- every requested record is there, and its clause follows from the evidence beside it: the
  window's version history, the incident, the outage, the holder's own error;
- every amendment continues the record's history and names an incident that covers it;

and prints the clause that stands for each request. A damaged, truncated or forged bundle
gets a verdict naming what failed; nothing here raises on hostile input."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from essc_gateway.domain.advance_notice import advance_notice
from essc_gateway.domain.maintenance import MaintenanceWindow
from essc_gateway.errors import PlatformFacts
from essc_gateway.evidence.bundle import FORMAT
from essc_gateway.evidence.entries import (
    EntryKind,
    amendment_from_entry,
    incident_from_entry,
    parse,
    record_from_entry,
    window_from_entry,
)
from essc_gateway.evidence.merkle import TreeHash, verify_consistency, verify_inclusion
from essc_gateway.evidence.signed_note import Checkpoint, NoteError, NoteVerifier
from essc_gateway.liability.classify import holder_at_fault, incident_applies
from essc_gateway.liability.model import (
    Amendment,
    Clause,
    Incident,
    LiabilityRecord,
    window_clause,
)


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    request_id: str
    rpc: str
    arrived_at: str
    status_code: str
    reason: str
    clause: Clause
    """The clause that stands, amendments applied."""
    history: tuple[str, ...]
    """The record's own clause, then each amendment (clause, incident, by whom, when)."""


@dataclass
class BundleVerdict:
    problems: list[str] = field(default_factory=list)
    requests: list[RequestVerdict] = field(default_factory=list)
    tree_size: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a whole number")
    return value


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)


# Platform failures refused before any attempt: a circuit the platform's failures opened, the
# platform's own maintenance.
_REFUSED_BEFORE = frozenset({"PLATFORM_CIRCUIT_OPEN", "PLATFORM_MAINTENANCE"})


class _Unreadable(Exception):
    """The bundle cannot be checked at all: what failed."""


def _open(
    bundle: bytes, verifier_key: str
) -> tuple[dict[str, Any], NoteVerifier, TreeHash, Checkpoint]:
    try:
        verifier = NoteVerifier.from_verifier_key(verifier_key.strip())
    except NoteError as error:
        raise _Unreadable(f"verifier key: {error}") from None
    try:
        data = orjson.loads(bundle)  # refuses NaN, Infinity and nesting past 1024
    except orjson.JSONDecodeError:
        raise _Unreadable("the bundle is not JSON text (damaged or truncated)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _Unreadable(f"not an evidence bundle of format {FORMAT}")
    try:
        tree_hash = TreeHash(str(data.get("tree_hash")))
    except ValueError:
        raise _Unreadable("the bundle names no known tree hash (sm3, sha256)") from None
    try:
        checkpoint = verifier.open_checkpoint(str(data.get("checkpoint", "")).encode())
    except NoteError as error:
        raise _Unreadable(f"checkpoint: {error}") from None
    return data, verifier, tree_hash, checkpoint


def verify_bundle(
    bundle: bytes,
    verifier_key: str,
    kept_checkpoints: Sequence[bytes] = (),
    min_notice: timedelta | None = None,
) -> BundleVerdict:
    """Checks `bundle` (see the module). `min_notice` overrides the minimum notice of
    A16(1)(a) the records state (the user agreement's, if the reader knows it)."""
    verdict = BundleVerdict()
    try:
        _verify(verdict, bundle, verifier_key, kept_checkpoints, min_notice)
    except Exception as unexpected:  # a verdict, never a traceback, whatever the input
        verdict.problems.append(
            f"the bundle could not be checked ({type(unexpected).__name__}): treat it as forged"
        )
    return verdict


def _verify(
    verdict: BundleVerdict,
    bundle: bytes,
    verifier_key: str,
    kept_checkpoints: Sequence[bytes],
    min_notice: timedelta | None,
) -> None:
    try:
        data, verifier, tree_hash, checkpoint = _open(bundle, verifier_key)
    except _Unreadable as unreadable:
        verdict.problems.append(str(unreadable))
        return
    verdict.tree_size = checkpoint.size
    _check_kept(verdict, verifier, tree_hash, checkpoint, data.get("consistency"), kept_checkpoints)
    entries = _proven_entries(verdict, tree_hash, checkpoint, data.get("entries"))
    requests = data.get("requests")
    if not isinstance(requests, list) or not all(isinstance(r, str) for r in requests):
        verdict.problems.append("the bundle does not list its requests")
        return
    _check_requests(verdict, entries, requests, min_notice)


def _check_kept(
    verdict: BundleVerdict,
    verifier: NoteVerifier,
    tree_hash: TreeHash,
    checkpoint: Checkpoint,
    consistency: Any,
    kept: Sequence[bytes],
) -> None:
    proofs: dict[int, list[bytes]] = {}
    try:
        for item in consistency or []:
            proofs[_whole(item["old_size"])] = [_unb64(h) for h in item["proof"]]
    except (TypeError, KeyError, ValueError, binascii.Error):
        verdict.problems.append("the consistency proofs are damaged")
    for number, note in enumerate(kept, start=1):
        try:
            old = verifier.open_checkpoint(note, checkpoint.origin)
        except NoteError as error:
            verdict.problems.append(f"kept checkpoint {number}: {error}")
            continue
        if old.size > checkpoint.size:
            verdict.problems.append(
                f"kept checkpoint of size {old.size} is newer than the bundle's "
                f"({checkpoint.size}): the log was cut short, or the bundle is stale"
            )
        elif old.size == checkpoint.size:
            if old.root != checkpoint.root:
                verdict.problems.append(
                    f"the log of size {old.size} has another root than the kept checkpoint: "
                    "history was rewritten"
                )
        elif old.size not in proofs:
            verdict.problems.append(
                f"no consistency proof from the kept checkpoint of size {old.size}"
            )
        elif not verify_consistency(
            tree_hash, old.size, checkpoint.size, proofs[old.size], old.root, checkpoint.root
        ):
            verdict.problems.append(
                f"the log is not an extension of the kept checkpoint of size {old.size}: "
                "history was rewritten"
            )


def _proven_entries(
    verdict: BundleVerdict, tree_hash: TreeHash, checkpoint: Checkpoint, items: Any
) -> list[tuple[int, EntryKind, dict[str, Any]]]:
    proven: list[tuple[int, EntryKind, dict[str, Any]]] = []
    if not isinstance(items, list):
        verdict.problems.append("the bundle holds no entries")
        return proven
    for position, item in enumerate(items):
        try:
            index = _whole(item["index"])
            body = str(item["body"]).encode()
            proof = [_unb64(h) for h in item["proof"]]
        except (TypeError, KeyError, ValueError, binascii.Error):
            verdict.problems.append(f"entry {position}: damaged (index, body or proof)")
            continue
        if not verify_inclusion(
            tree_hash, tree_hash.leaf(body), index, checkpoint.size, proof, checkpoint.root
        ):
            verdict.problems.append(
                f"entry {index}: not in the log of the checkpoint (edited, forged or moved)"
            )
            continue
        try:
            kind, fields = parse(body)
        except (ValueError, KeyError):
            verdict.problems.append(f"entry {index}: proven, but not an entry this verifier reads")
            continue
        proven.append((index, kind, fields))
    return proven


@dataclass
class _Evidence:
    records: dict[str, LiabilityRecord] = field(default_factory=dict)
    amendments: dict[str, list[Amendment]] = field(default_factory=dict)
    windows: dict[str, list[MaintenanceWindow]] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    outages_opened: dict[str, dict[str, Any]] = field(default_factory=dict)
    outages_closed: dict[str, dict[str, Any]] = field(default_factory=dict)


def _gather(
    verdict: BundleVerdict, entries: list[tuple[int, EntryKind, dict[str, Any]]]
) -> _Evidence:
    evidence = _Evidence()
    for index, kind, fields in sorted(entries, key=lambda e: e[0]):
        try:
            if kind is EntryKind.LIABILITY_RECORD:
                record = record_from_entry(fields)
                if record.request_id in evidence.records:
                    verdict.problems.append(f"two records for request {record.request_id}")
                evidence.records[record.request_id] = record
            elif kind is EntryKind.AMENDMENT:
                amendment = amendment_from_entry(fields)
                evidence.amendments.setdefault(amendment.request_id, []).append(amendment)
            elif kind is EntryKind.WINDOW_VERSION:
                window = window_from_entry(fields)
                evidence.windows.setdefault(window.window_id, []).append(window)
            elif kind is EntryKind.INCIDENT:
                incident = incident_from_entry(fields)
                evidence.incidents[incident.incident_id] = incident
            elif kind is EntryKind.OUTAGE_OPENED:
                evidence.outages_opened[str(fields["outage_id"])] = fields
            elif kind is EntryKind.OUTAGE_CLOSED:
                evidence.outages_closed[str(fields["outage_id"])] = fields
        except (KeyError, ValueError, TypeError):
            verdict.problems.append(f"entry {index}: a {kind.value} with missing or bad fields")
    for window_id, versions in evidence.windows.items():
        versions.sort(key=lambda w: w.version)
        if [w.version for w in versions] != list(range(1, len(versions) + 1)):
            verdict.problems.append(f"window {window_id}: versions missing from the bundle")
    return evidence


def _check_requests(
    verdict: BundleVerdict,
    entries: list[tuple[int, EntryKind, dict[str, Any]]],
    requests: list[str],
    min_notice: timedelta | None,
) -> None:
    evidence = _gather(verdict, entries)
    for request_id in requests:
        record = evidence.records.get(request_id)
        if record is None:
            verdict.problems.append(f"request {request_id}: no liability record in the bundle")
            continue
        try:
            problems = _record_problems(record, evidence, min_notice)
        except (ValueError, OverflowError, TypeError) as unusable:
            problems = [f"its evidence cannot be checked ({type(unusable).__name__})"]
        history = [f"{record.clause.value} (recorded {record.at.isoformat()})"]
        standing = record.clause
        for amendment in evidence.amendments.get(request_id, []):
            problems += _amendment_problems(record, amendment, standing, evidence)
            history.append(
                f"{amendment.clause.value} (amended: incident {amendment.incident_id} "
                f"declared by {amendment.declared_by} at {amendment.declared_at.isoformat()})"
            )
            standing = amendment.clause
        verdict.problems += [f"request {request_id}: {p}" for p in problems]
        verdict.requests.append(
            RequestVerdict(
                request_id=request_id,
                rpc=record.rpc,
                arrived_at=record.arrival.isoformat(),
                status_code=record.status_code,
                reason=record.reason,
                clause=standing,
                history=tuple(history),
            )
        )


def _record_problems(
    record: LiabilityRecord, evidence: _Evidence, min_notice: timedelta | None
) -> list[str]:
    """What in the record's own clause the evidence beside it does not support."""
    clause = record.clause
    if record.incident_id is not None:
        return _incident_problems(record, record.incident_id, clause, evidence)
    if record.window_id is not None:
        return _window_problems(record, evidence, min_notice)
    if record.outage_id is not None:
        return _outage_problems(record, evidence)
    return _plain_problems(record)


def _plain_problems(record: LiabilityRecord) -> list[str]:
    """A clause with no window, incident or outage behind it: the record's own evidence."""
    clause, problems = record.clause, []
    if clause is Clause.A16_2 and not holder_at_fault(record.reason, record.evidence):
        problems.append("A16(2) without evidence of the holder's own error")
    elif clause is Clause.A16_1_A:
        problems.append("A16(1)(a) without a maintenance window")
    elif clause is Clause.A16_1_C:
        problems.append("A16(1)(c) without an incident")
    elif clause in (Clause.A16_1_B, Clause.A16_1_D):
        reached = record.evidence.get("platform_reached")
        if reached is None and not record.attempts and record.reason not in _REFUSED_BEFORE:
            problems.append(f"{clause.value} without any platform evidence")
        elif clause is Clause.A16_1_D and reached != "false":
            problems.append("A16(1)(d) though the platform was reached")
    return problems


def _incident_problems(
    record: LiabilityRecord, incident_id: str, clause: Clause, evidence: _Evidence
) -> list[str]:
    incident = evidence.incidents.get(incident_id)
    if incident is None:
        return [f"incident {incident_id} is not in the bundle"]
    problems = []
    if not incident.covers(record.arrival):
        problems.append(f"incident {incident_id} does not cover the request's arrival")
    if clause is not incident.kind.clause:
        problems.append(
            f"{clause.value} but incident {incident_id} falls under {incident.kind.clause.value}"
        )
    return problems


def _window_problems(
    record: LiabilityRecord, evidence: _Evidence, min_notice: timedelta | None
) -> list[str]:
    history = evidence.windows.get(record.window_id or "")
    if not history:
        return [f"window {record.window_id} is not in the bundle"]
    notice_period = min_notice
    if notice_period is None:
        stated = record.evidence.get("window_min_notice_s", "")
        if not (stated.isascii() and stated.isdigit() and len(stated) <= 9):
            return ["the record states no minimum notice; give one to the verifier"]
        notice_period = timedelta(seconds=int(stated))
    notice = advance_notice(
        history, record.rpc, record.arrival, notice_period, record.window_version
    )
    if notice is None:
        return [f"window {record.window_id} (version {record.window_version}) does not cover it"]
    kind = next(w.kind for w in history if w.version == notice.applied_version)
    expected = window_clause(kind, notice.in_advance)
    if record.clause is not expected:
        return [
            f"{record.clause.value} but the versions of window {record.window_id} give "
            f"{expected.value}"
        ]
    return []


def _outage_problems(record: LiabilityRecord, evidence: _Evidence) -> list[str]:
    opened = evidence.outages_opened.get(record.outage_id or "")
    if opened is None:
        return [f"outage {record.outage_id} is not in the bundle"]
    problems = []
    if opened.get("clause") != record.clause.value:
        problems.append(
            f"{record.clause.value} but outage {record.outage_id} was opened as "
            f"{opened.get('clause')}"
        )
    closed = evidence.outages_closed.get(record.outage_id or "")
    try:
        ended = None if closed is None else datetime.fromisoformat(str(closed["ended_at"]))
    except (KeyError, ValueError):
        return [*problems, f"outage {record.outage_id}: its closing entry is damaged"]
    if ended is not None and ended < record.arrival:
        problems.append(f"outage {record.outage_id} had ended before the request arrived")
    return problems


def _amendment_problems(
    record: LiabilityRecord, amendment: Amendment, standing: Clause, evidence: _Evidence
) -> list[str]:
    problems = []
    if amendment.previous_clause is not standing:
        problems.append(f"amendment {amendment.amendment_id} does not follow the clause before it")
    if amendment.incident_id is None:
        problems.append(f"amendment {amendment.amendment_id} names no incident")
        return problems
    if not incident_applies(record.reason, PlatformFacts.from_evidence(record.evidence)):
        problems.append(
            f"amendment {amendment.amendment_id} moves a failure no incident covers "
            "(the holder's own, the gateway's, the bank's short deadline)"
        )
    return problems + _incident_problems(record, amendment.incident_id, amendment.clause, evidence)


def render_verdict(verdict: BundleVerdict) -> str:
    lines = [f"log size {verdict.tree_size}"]
    for request in verdict.requests:
        lines.append(
            f"{request.request_id}  {request.arrived_at}  {request.rpc}  "
            f"{request.status_code}/{request.reason}  {request.clause.value}"
        )
        lines += [f"    {step}" for step in request.history[1:]]
    if verdict.ok:
        lines.append("VERIFIED: every entry is in the signed log and supports its clause")
    else:
        lines.append(f"FAILED: {len(verdict.problems)} problem(s)")
        lines += [f"  - {p}" for p in verdict.problems]
    return "\n".join(lines) + "\n"
