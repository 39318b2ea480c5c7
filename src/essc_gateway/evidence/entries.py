"""Evidence log entries: every fact a liability clause rests on, as canonical bytes (sorted
JSON, UTC times), and back. What goes in the log: liability records, their amendments, every
version of every maintenance window, incidents, outage openings and closings, and the
request counts statements use. A third party reads these bytes, never our tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from essc_gateway.access.model import AccessEvent
from essc_gateway.domain.maintenance import (
    MaintenanceWindow,
    WindowKind,
    announcement_fields,
    announcement_of,
)
from essc_gateway.keys.model import KeyEvent
from essc_gateway.liability.model import (
    Amendment,
    AmendmentCause,
    Clause,
    Incident,
    IncidentKind,
    LiabilityRecord,
    Outage,
)
from essc_gateway.privacy.model import Disclosure, Erasure
from essc_gateway.upstream.attempts import attempt_from_dict, attempt_to_dict


class EntryKind(StrEnum):
    LIABILITY_RECORD = "LIABILITY_RECORD"
    AMENDMENT = "AMENDMENT"
    WINDOW_VERSION = "WINDOW_VERSION"
    INCIDENT = "INCIDENT"
    OUTAGE_OPENED = "OUTAGE_OPENED"
    OUTAGE_CLOSED = "OUTAGE_CLOSED"
    REQUEST_COUNTS = "REQUEST_COUNTS"
    KEY_EVENT = "KEY_EVENT"
    OPERATOR_ACCESS = "OPERATOR_ACCESS"
    ERASURE = "ERASURE"
    DISCLOSURE = "DISCLOSURE"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry to append: its kind, what it is about (a request id, window id...), and
    its canonical bytes (the Merkle leaf's data)."""

    kind: EntryKind
    ref: str
    body: bytes


def _canonical(kind: EntryKind, fields: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8, times as RFC 3339 in UTC: the bytes `json.dumps(...,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gives, made by orjson at a
    third of the cost (every failed request pays it)."""
    return orjson.dumps({"kind": kind.value, **fields}, option=orjson.OPT_SORT_KEYS)


def _time(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is UTC:
        return moment
    return moment.astimezone(UTC)


def _parse_time(text: Any) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("a time must be ISO 8601 text")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time must carry its offset")
    return moment


def _required_time(text: Any) -> datetime:
    moment = _parse_time(text)
    if moment is None:
        raise ValueError("a required time is missing")
    return moment


def record_entry(record: LiabilityRecord) -> Entry:
    return Entry(
        EntryKind.LIABILITY_RECORD,
        record.request_id,
        _canonical(
            EntryKind.LIABILITY_RECORD,
            {
                "request_id": record.request_id,
                "trace_id": record.trace_id,
                "bank_id": record.bank_id,
                "rpc": record.rpc,
                "arrived_at": _time(record.arrival),
                "answered_at": _time(record.at),
                "deadline_at": _time(record.deadline_at),
                "status_code": record.status_code,
                "reason": record.reason,
                "clause": record.clause.value,
                "evidence": dict(record.evidence),
                "attempts": [attempt_to_dict(a) for a in record.attempts],
                "outage_id": record.outage_id,
                "window_id": record.window_id,
                "window_version": record.window_version,
                "incident_id": record.incident_id,
                "holder_token": record.holder_token,
            },
        ),
    )


def amendment_entry(amendment: Amendment) -> Entry:
    return Entry(
        EntryKind.AMENDMENT,
        amendment.request_id,
        _canonical(
            EntryKind.AMENDMENT,
            {
                "amendment_id": amendment.amendment_id,
                "request_id": amendment.request_id,
                "clause": amendment.clause.value,
                "previous_clause": amendment.previous_clause.value,
                "cause": amendment.cause.value,
                "incident_id": amendment.incident_id,
                "declared_by": amendment.declared_by,
                "declared_at": _time(amendment.declared_at),
                "amended_at": _time(amendment.amended_at),
            },
        ),
    )


def window_entry(window: MaintenanceWindow) -> Entry:
    return Entry(
        EntryKind.WINDOW_VERSION,
        window.window_id,
        _canonical(
            EntryKind.WINDOW_VERSION,
            {
                "window_id": window.window_id,
                "version": window.version,
                "window_kind": window.kind.value,
                "starts_at": _time(window.starts_at),
                "ends_at": _time(window.ends_at),
                "rpcs": sorted(window.rpcs),
                "reason": window.reason,
                "announced_at": _time(window.announced_at),
                "amended_at": _time(window.amended_at),
                "cancelled_at": _time(window.cancelled_at),
                "announcement": announcement_fields(window.announcement),
            },
        ),
    )


def incident_entry(incident: Incident) -> Entry:
    return Entry(
        EntryKind.INCIDENT,
        incident.incident_id,
        _canonical(
            EntryKind.INCIDENT,
            {
                "incident_id": incident.incident_id,
                "incident_kind": incident.kind.value,
                "starts_at": _time(incident.starts_at),
                "ends_at": _time(incident.ends_at),
                "declared_at": _time(incident.declared_at),
                "declared_by": incident.declared_by,
                "description": incident.description,
            },
        ),
    )


def outage_opened_entry(outage: Outage, holder: str) -> Entry:
    return Entry(
        EntryKind.OUTAGE_OPENED,
        outage.outage_id,
        _canonical(
            EntryKind.OUTAGE_OPENED,
            {
                "outage_id": outage.outage_id,
                "scope": outage.scope,
                "started_at": _time(outage.started_at),
                "reached": outage.reached,
                "clause": outage.clause.value,
                "opened_by": holder,
            },
        ),
    )


def outage_closed_entry(outage: Outage) -> Entry:
    return Entry(
        EntryKind.OUTAGE_CLOSED,
        outage.outage_id,
        _canonical(
            EntryKind.OUTAGE_CLOSED,
            {
                "outage_id": outage.outage_id,
                "scope": outage.scope,
                "started_at": _time(outage.started_at),
                "ended_at": _time(outage.ended_at),
                "last_failure_at": _time(outage.last_failure_at),
                "reached": outage.reached,
                "clause": outage.clause.value,
                "status_counts": dict(outage.status_counts),
                "affected": dict(outage.affected),
            },
        ),
    )


def counts_entry(bank_id: str, day: str, requests: int, failed: int) -> Entry:
    return Entry(
        EntryKind.REQUEST_COUNTS,
        bank_id,
        _canonical(
            EntryKind.REQUEST_COUNTS,
            {"bank_id": bank_id, "day": day, "requests": requests, "failed": failed},
        ),
    )


def key_event_entry(event: KeyEvent) -> Entry:
    """A key's generation, rotation, retirement or incident, and who caused it (K5, K7):
    names and versions only, never key material."""
    return Entry(
        EntryKind.KEY_EVENT,
        event.key_id,
        _canonical(
            EntryKind.KEY_EVENT,
            {
                "event": event.kind.value,
                "key_id": event.key_id,
                "bank_id": event.bank_id,
                "purpose": event.purpose.value,
                "version": event.version,
                "suite": event.suite.name,
                "at": _time(event.at),
                "by": event.by,
                "detail": event.detail,
            },
        ),
    )


def access_entry(event: AccessEvent) -> Entry:
    """One OperatorService call, allowed or refused (A13(1)): who, what, on what, the answer;
    never personal data (the target names banks, windows, versions, pseudonyms)."""
    return Entry(
        EntryKind.OPERATOR_ACCESS,
        event.access_id,
        _canonical(
            EntryKind.OPERATOR_ACCESS,
            {
                "access_id": event.access_id,
                "at": _time(event.at),
                "operator": event.operator,
                "method": event.method,
                "target": event.target,
                "code": event.code,
                "reason": event.reason,
            },
        ),
    )


def erasure_entry(erasure: Erasure) -> Entry:
    """A holder's erasure (A14): ground, reference, who and when, what went; the erasure id
    is the only name it has for the holder."""
    counts = erasure.counts
    return Entry(
        EntryKind.ERASURE,
        erasure.erasure_id,
        _canonical(
            EntryKind.ERASURE,
            {
                "erasure_id": erasure.erasure_id,
                "bank_id": erasure.bank_id,
                "ground": erasure.ground.value,
                "reference": erasure.reference,
                "operator": erasure.operator,
                "at": _time(erasure.at),
                "cards": counts.cards,
                "holder_keys": counts.holder_keys,
                "records_unlinked": counts.records_unlinked,
                "other_rows": counts.other_rows,
                "live_cards": counts.live_cards,
                "records_under_lookup_token": counts.records_under_lookup_token,
                "lookup_versions": list(counts.lookup_versions),
            },
        ),
    )


def disclosure_entry(disclosure: Disclosure) -> Entry:
    """A disclosure (A13(2)): to whom, on what ground, which fields, by whom, when; the
    holder only as a salted commitment."""
    return Entry(
        EntryKind.DISCLOSURE,
        disclosure.disclosure_id,
        _canonical(
            EntryKind.DISCLOSURE,
            {
                "disclosure_id": disclosure.disclosure_id,
                "bank_id": disclosure.bank_id,
                "holder_ref": disclosure.holder_ref,
                "recipient": disclosure.recipient,
                "ground": disclosure.ground.value,
                "reference": disclosure.reference,
                "fields": list(disclosure.fields),
                "operator": disclosure.operator,
                "at": _time(disclosure.at),
            },
        ),
    )


def access_from_entry(data: Mapping[str, Any]) -> AccessEvent:
    return AccessEvent(
        access_id=str(data["access_id"]),
        at=_required_time(data["at"]),
        operator=str(data["operator"]),
        method=str(data["method"]),
        target=str(data["target"]),
        code=str(data["code"]),
        reason=str(data["reason"]),
    )


# Reading entries back (the offline verifier): any missing or ill-typed field raises
# ValueError or KeyError, which the verifier reports as a damaged entry.


def parse(body: bytes) -> tuple[EntryKind, dict[str, Any]]:
    """The entry's kind and fields. Raises ValueError for anything but a JSON object (no
    NaN or Infinity, nesting within the parser's depth)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:  # orjson refuses NaN, Infinity and deep nesting
        raise ValueError("an entry is not JSON") from error
    if not isinstance(data, dict):
        raise ValueError("an entry is a JSON object")
    return EntryKind(data["kind"]), data


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("a reference must be text or null")


def _optional_int(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError("a version must be a whole number or null")


def record_from_entry(data: Mapping[str, Any]) -> LiabilityRecord:
    evidence = data["evidence"]
    if not isinstance(evidence, dict):
        raise ValueError("evidence must be an object")
    return LiabilityRecord(
        seq=0,
        request_id=str(data["request_id"]),
        trace_id=str(data["trace_id"]),
        bank_id=str(data["bank_id"]),
        rpc=str(data["rpc"]),
        at=_required_time(data["answered_at"]),
        arrived_at=_required_time(data["arrived_at"]),
        deadline_at=_parse_time(data["deadline_at"]),
        status_code=str(data["status_code"]),
        reason=str(data["reason"]),
        clause=Clause(data["clause"]),
        evidence={str(k): str(v) for k, v in evidence.items()},
        attempts=tuple(attempt_from_dict(a) for a in data["attempts"]),
        outage_id=_optional_str(data["outage_id"]),
        window_id=_optional_str(data["window_id"]),
        window_version=_optional_int(data["window_version"]),
        incident_id=_optional_str(data["incident_id"]),
        holder_token=_optional_str(data["holder_token"]),
    )


def amendment_from_entry(data: Mapping[str, Any]) -> Amendment:
    return Amendment(
        amendment_id=str(data["amendment_id"]),
        request_id=str(data["request_id"]),
        clause=Clause(data["clause"]),
        previous_clause=Clause(data["previous_clause"]),
        cause=AmendmentCause(data["cause"]),
        incident_id=_optional_str(data["incident_id"]),
        declared_by=str(data["declared_by"]),
        declared_at=_required_time(data["declared_at"]),
        amended_at=_required_time(data["amended_at"]),
    )


def window_from_entry(data: Mapping[str, Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        window_id=str(data["window_id"]),
        kind=WindowKind(data["window_kind"]),
        starts_at=_required_time(data["starts_at"]),
        ends_at=_required_time(data["ends_at"]),
        rpcs=frozenset(str(r) for r in data["rpcs"]),
        reason=str(data["reason"]),
        announced_at=_required_time(data["announced_at"]),
        amended_at=_parse_time(data["amended_at"]),
        cancelled_at=_parse_time(data["cancelled_at"]),
        version=int(data["version"]),
        announcement=announcement_of(data["announcement"]),
    )


def incident_from_entry(data: Mapping[str, Any]) -> Incident:
    return Incident(
        incident_id=str(data["incident_id"]),
        kind=IncidentKind(data["incident_kind"]),
        starts_at=_required_time(data["starts_at"]),
        ends_at=_required_time(data["ends_at"]),
        declared_at=_required_time(data["declared_at"]),
        declared_by=str(data["declared_by"]),
        description=str(data["description"]),
    )
