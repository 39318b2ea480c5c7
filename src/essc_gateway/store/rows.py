"""Rows to records, for both adapters: SQLite's and asyncpg's rows are both read by column
name; only times differ (ISO text in SQLite, `timestamptz` values in PostgreSQL), so each
adapter passes how to read one."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from essc_gateway.domain.maintenance import (
    MaintenanceWindow,
    WindowKind,
    announcement_fields,
    announcement_of,
)
from essc_gateway.evidence.entries import parse, record_from_entry
from essc_gateway.keys.model import (
    KeyAction,
    KeyActionKind,
    KeyJob,
    KeyPurpose,
    KeyState,
    KeyVersion,
    WrappedHolderKey,
)
from essc_gateway.keys.suites import Suite
from essc_gateway.liability.model import (
    Amendment,
    AmendmentCause,
    Clause,
    Incident,
    IncidentKind,
    LiabilityRecord,
    Outage,
)
from essc_gateway.privacy.model import ErasureJob, ErasureJobKind
from essc_gateway.store.base import CardRecord, ForwardItem, IssueAttempt, IssueAttemptState
from essc_gateway.store.cluster import ReplicaInfo
from essc_gateway.store.sqlite_util import text_of
from essc_gateway.upstream.attempts import attempt_from_dict


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


TimeOf = Callable[[Any], datetime | None]
"""A stored time (None stays None)."""

CARD_COLUMNS = (
    "essc_id, bank_id, holder_token, name_sealed, id_number_sealed, phone_sealed, "
    "card_number_sealed, status, issued_at, consent_version, consent_accepted_at, "
    "consent_channel, guardian_sealed, guardian_relation, terminated_at"
)
RECORD_COLUMNS = (
    "seq, request_id, trace_id, bank_id, rpc, at, status_code, reason, clause, evidence, "
    "outage_id, window_id, incident_id, holder_token, arrived_at, deadline_at, attempts, "
    "window_version, log_index"
)
"""A liability record's columns (the hash chain's prev_hash and row_hash, replaced by the
evidence log, are written empty). A logged record's evidence and attempts are in its log
entry only: the row indexes it, the entry is the evidence (written once, not twice)."""
RECORD_SELECT = (
    f"SELECT {RECORD_COLUMNS}, evidence_log.body AS entry_body FROM liability_records "  # noqa: S608
    "LEFT JOIN evidence_log ON evidence_log.idx = liability_records.log_index"
)
"""Records with their entries; add WHERE and ORDER BY."""


def as_stored(value: datetime | None) -> datetime | None:
    """PostgreSQL's times: asyncpg gives aware datetimes already."""
    return value


def _required(time_of: TimeOf, value: Any) -> datetime:
    moment = time_of(value)
    if moment is None:
        raise ValueError("a NOT NULL time column is NULL")
    return moment


def card_from(row: Row, time_of: TimeOf) -> CardRecord:
    return CardRecord(
        essc_id=row["essc_id"],
        bank_id=row["bank_id"],
        holder_token=row["holder_token"],
        name_sealed=row["name_sealed"],
        id_number_sealed=row["id_number_sealed"],
        phone_sealed=row["phone_sealed"],
        card_number_sealed=row["card_number_sealed"],
        status=row["status"],
        issued_at=_required(time_of, row["issued_at"]),
        consent_version=row["consent_version"],
        consent_accepted_at=_required(time_of, row["consent_accepted_at"]),
        consent_channel=row["consent_channel"],
        guardian_sealed=row["guardian_sealed"],
        guardian_relation=row["guardian_relation"],
        terminated_at=time_of(row["terminated_at"]),
    )


def erasure_job_from(row: Row, time_of: TimeOf) -> ErasureJob:
    return ErasureJob(
        job_id=str(row["job_id"]),
        kind=ErasureJobKind(row["kind"]),
        bank_id=str(row["bank_id"]),
        reference=str(row["reference"]),
        operator=str(row["operator"]),
        started_at=_required(time_of, row["started_at"]),
        finished_at=time_of(row["finished_at"]),
        erased=int(row["erased"]),
        waiting=int(row["waiting"]),
        holder=row["holder"],
        lease_until=time_of(row["lease_until"]),
    )


def attempt_from(row: Row, time_of: TimeOf) -> IssueAttempt:
    return IssueAttempt(
        bank_id=row["bank_id"],
        idempotency_key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        state=IssueAttemptState(row["state"]),
        created_at=_required(time_of, row["created_at"]),
        outcome=row["outcome"],
        essc_id=row["essc_id"],
        failure_reason=row["failure_reason"],
        completed_at=time_of(row["completed_at"]),
        lease_until=time_of(row["lease_until"]),
        draft_sealed=row["draft_sealed"],
    )


def forward_from(row: Row, time_of: TimeOf) -> ForwardItem:
    return ForwardItem(
        bank_id=row["bank_id"],
        idempotency_key=row["idempotency_key"],
        payload_sealed=row["payload_sealed"],
        accepted_at=_required(time_of, row["accepted_at"]),
        forward_after=_required(time_of, row["forward_after"]),
        tries=row["tries"],
        claim=row["claim"] or "",
    )


def window_snapshot(window: MaintenanceWindow) -> str:
    """The version history's copy of a window (both stores write the same text): every
    version keeps its own times and public notice, the evidence of A16(1)(a)."""
    return json.dumps(
        {
            "kind": window.kind.value,
            "starts_at": window.starts_at.isoformat(),
            "ends_at": window.ends_at.isoformat(),
            "rpcs": sorted(window.rpcs),
            "reason": window.reason,
            "announced_at": window.announced_at.isoformat(),
            "amended_at": text_of(window.amended_at),
            "cancelled_at": text_of(window.cancelled_at),
            "announcement": announcement_fields(window.announcement),
        },
        sort_keys=True,
    )


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def window_from_snapshot(window_id: str, version: int, snapshot: str) -> MaintenanceWindow:
    """One version of a window from its history row."""
    data = json.loads(snapshot)
    return MaintenanceWindow(
        window_id=window_id,
        kind=WindowKind(data["kind"]),
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
        rpcs=frozenset(data["rpcs"]),
        reason=data["reason"],
        announced_at=datetime.fromisoformat(data["announced_at"]),
        amended_at=_time(data["amended_at"]),
        cancelled_at=_time(data["cancelled_at"]),
        version=version,
        # Absent from versions written before notices were recorded.
        announcement=announcement_of(data.get("announcement")),
    )


def record_from(row: Row, time_of: TimeOf) -> LiabilityRecord:
    """A record from a `RECORD_SELECT` row: from its log entry (the row only indexes it),
    or from the row itself for records written before the log."""
    body = row["entry_body"]
    if body is not None:
        _, fields = parse(bytes(body))
        return replace(record_from_entry(fields), seq=row["seq"], log_index=row["log_index"])
    return LiabilityRecord(
        seq=row["seq"],
        request_id=row["request_id"],
        trace_id=row["trace_id"],
        bank_id=row["bank_id"],
        rpc=row["rpc"],
        at=_required(time_of, row["at"]),
        status_code=row["status_code"],
        reason=row["reason"],
        clause=Clause(row["clause"]),
        evidence=json.loads(row["evidence"]),
        outage_id=row["outage_id"],
        window_id=row["window_id"],
        incident_id=row["incident_id"],
        holder_token=row["holder_token"],
        arrived_at=time_of(row["arrived_at"]),
        deadline_at=time_of(row["deadline_at"]),
        attempts=tuple(attempt_from_dict(a) for a in json.loads(row["attempts"])),
        window_version=row["window_version"],
        log_index=row["log_index"],
    )


def incident_from_row(row: Row, time_of: TimeOf) -> Incident:
    return Incident(
        incident_id=row["incident_id"],
        kind=IncidentKind(row["kind"]),
        starts_at=_required(time_of, row["starts_at"]),
        ends_at=_required(time_of, row["ends_at"]),
        declared_at=_required(time_of, row["declared_at"]),
        description=row["description"],
        declared_by=row["declared_by"],
    )


def outage_from(row: Row, time_of: TimeOf) -> Outage:
    return Outage(
        outage_id=row["outage_id"],
        scope=row["scope"],
        started_at=_required(time_of, row["started_at"]),
        ended_at=time_of(row["ended_at"]),
        reached=bool(row["reached"]),
        last_failure_at=_required(time_of, row["last_failure_at"]),
        status_counts=json.loads(row["status_counts"]),
        affected=json.loads(row["affected"]),
        clause=Clause(row["clause"]),
    )


def record_values(
    record: LiabilityRecord, time_as: Callable[[datetime | None], Any]
) -> tuple[Any, ...]:
    """A logged record's column values in `RECORD_COLUMNS` order, times as the adapter
    stores them: what queries select on; the rest is in its log entry alone (written once,
    not twice), so those columns are left empty."""
    return (
        record.seq,
        record.request_id,
        "",
        record.bank_id,
        "",
        time_as(record.at),
        "",
        "",
        "",
        "{}",
        None,
        None,
        None,
        record.holder_token,
        time_as(record.arrival),
        None,
        "[]",
        None,
        record.log_index,
    )


@dataclass(frozen=True, slots=True)
class IndexRow:
    """What a liability record's row holds for queries, as stored (the audit compares it
    with the record's log entry: an edited row could hide a record from a report)."""

    request_id: str
    bank_id: str
    at: datetime
    arrived_at: datetime | None
    holder_token: str | None
    log_index: int | None


def index_row_from(row: Row, time_of: TimeOf) -> IndexRow:
    return IndexRow(
        request_id=row["request_id"],
        bank_id=row["bank_id"],
        at=_required(time_of, row["at"]),
        arrived_at=time_of(row["arrived_at"]),
        holder_token=row["holder_token"],
        log_index=row["log_index"],
    )


def amendment_values(amendment: Amendment, time_as: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """An amendment's column values, times as the adapter stores them."""
    return (
        amendment.amendment_id,
        amendment.request_id,
        amendment.incident_id,
        amendment.clause.value,
        amendment.previous_clause.value,
        amendment.cause.value,
        amendment.declared_by,
        time_as(amendment.declared_at),
        time_as(amendment.amended_at),
        amendment.log_index,
    )


def amendment_from(row: Row, time_of: TimeOf) -> Amendment:
    return Amendment(
        amendment_id=row["amendment_id"],
        request_id=row["request_id"],
        clause=Clause(row["clause"]),
        previous_clause=Clause(row["previous_clause"]),
        cause=AmendmentCause(row["cause"]),
        incident_id=row["incident_id"],
        declared_by=row["declared_by"],
        declared_at=_required(time_of, row["declared_at"]),
        amended_at=_required(time_of, row["amended_at"]),
        log_index=row["log_index"],
    )


def replica_from(row: Row, time_of: TimeOf) -> ReplicaInfo:
    return ReplicaInfo(
        replica_id=row["replica_id"],
        host=row["host"],
        pid=row["pid"],
        address=row["address"],
        version=row["version"],
        started_at=_required(time_of, row["started_at"]),
        heartbeat_at=_required(time_of, row["heartbeat_at"]),
    )


def counts_added(stored: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """An outage's counts with one replica's report added (never overwritten)."""
    total = dict(stored)
    for key, count in more.items():
        total[key] = total.get(key, 0) + count
    return total


def key_version_from(row: Row, time_of: TimeOf) -> KeyVersion:
    return KeyVersion(
        bank_id=row["bank_id"],
        purpose=KeyPurpose(row["purpose"]),
        version=row["version"],
        suite=Suite(row["suite"]),
        wrapped=bytes(row["wrapped"]),
        parent_version=row["parent_version"],
        state=KeyState(row["state"]),
        created_at=_required(time_of, row["created_at"]),
        created_by=row["created_by"],
    )


def holder_key_from(row: Row, time_of: TimeOf) -> WrappedHolderKey:
    return WrappedHolderKey(
        bank_id=row["bank_id"],
        holder_token=row["holder_token"],
        key_id=row["key_id"],
        data_version=row["data_version"],
        wrapped=bytes(row["wrapped"]),
        created_at=_required(time_of, row["created_at"]),
    )


def key_job_from(row: Row, time_of: TimeOf) -> KeyJob:
    return KeyJob(
        job_id=row["job_id"],
        bank_id=row["bank_id"],
        target_version=row["target_version"],
        rekey=bool(row["rekey"]),
        done=row["done"],
        total=row["total"],
        started_at=_required(time_of, row["started_at"]),
        finished_at=time_of(row["finished_at"]),
        holder=row["holder"],
        lease_until=time_of(row["lease_until"]),
        purpose=KeyPurpose(row["purpose"]),
    )


def key_action_from(row: Row, time_of: TimeOf) -> KeyAction:
    return KeyAction(
        action_id=row["action_id"],
        kind=KeyActionKind(row["kind"]),
        bank_id=row["bank_id"],
        purpose=KeyPurpose(row["purpose"]),
        version=row["version"],
        recipient_public_key=row["recipient_public_key"],
        requested_by=row["requested_by"],
        requested_at=_required(time_of, row["requested_at"]),
        approved_by=row["approved_by"],
        approved_at=time_of(row["approved_at"]),
    )
