"""The ledger's records and the reports made of them. No I/O, no protobuf."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from essc_gateway.domain.maintenance import MaintenanceWindow, WindowKind
from essc_gateway.upstream.attempts import PlatformAttempt


class Clause(StrEnum):
    """The user agreement's liability clauses (A16), plus the bank's own liability."""

    A16_1_A = "A16(1)(a)"
    """Maintenance announced in advance on the bank's website or mobile banking."""
    A16_1_B = "A16(1)(b)"
    """A fault on the national platform's side: it answered with an error, hung, or was in
    its own maintenance."""
    A16_1_C = "A16(1)(c)"
    """Force majeure declared by an operator: typhoon, earthquake, flood, power cut, war..."""
    A16_1_D = "A16(1)(d)"
    """Third party: the platform could not be reached at all, or a declared hacker attack,
    power-system problem or telecom adjustment."""
    A16_2 = "A16(2)"
    """The holder's own fault: wrong phone, wrong password or SMS code, lockout from them."""
    BANK = "BANK"
    """The bank is liable: the gateway's own errors, shedding, late or missing announcements,
    the bank's own invalid requests."""


CLAUSE_DESCRIPTIONS: Mapping[Clause, str] = {
    Clause.A16_1_A: "maintenance announced in advance",
    Clause.A16_1_B: "national platform fault",
    Clause.A16_1_C: "force majeure",
    Clause.A16_1_D: "third party / platform unreachable",
    Clause.A16_2: "holder's own fault",
    Clause.BANK: "bank liable",
}


class IncidentKind(StrEnum):
    """Operator-declared incidents and the clause each falls under."""

    TYPHOON = "TYPHOON"
    EARTHQUAKE = "EARTHQUAKE"
    TSUNAMI = "TSUNAMI"
    FLOOD = "FLOOD"
    POWER_CUT = "POWER_CUT"
    WAR = "WAR"
    TERRORIST_ATTACK = "TERRORIST_ATTACK"
    HACKER_ATTACK = "HACKER_ATTACK"
    POWER_SYSTEM = "POWER_SYSTEM"
    TELECOM_ADJUSTMENT = "TELECOM_ADJUSTMENT"

    @property
    def clause(self) -> Clause:
        third_party = {
            IncidentKind.HACKER_ATTACK,
            IncidentKind.POWER_SYSTEM,
            IncidentKind.TELECOM_ADJUSTMENT,
        }
        return Clause.A16_1_D if self in third_party else Clause.A16_1_C


def window_clause(kind: WindowKind, in_advance: bool) -> Clause:
    """The clause of failures caused by a maintenance window: the platform's own window is a
    platform-side matter (A16(1)(b)); the bank's is A16(1)(a) only if the part of it that
    covered the request was announced in advance."""
    if kind is WindowKind.PLATFORM:
        return Clause.A16_1_B
    return Clause.A16_1_A if in_advance else Clause.BANK


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    kind: IncidentKind
    starts_at: datetime
    ends_at: datetime
    declared_at: datetime
    description: str
    declared_by: str = ""
    """The operator identity that declared it."""

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class Outage:
    """A period in which the platform (or one of its operations) did not answer as it should."""

    outage_id: str
    scope: str
    """A platform operation, e.g. "IssueCard"."""
    started_at: datetime
    """The first failing attempt."""
    ended_at: datetime | None
    """The first successful answer after it; None while it lasts."""
    reached: bool
    """Whether the platform answered at all (False: refused / reset connections only)."""
    last_failure_at: datetime
    status_counts: Mapping[str, int]
    """Failed attempts by gRPC status code (NOT_SENT for connection failures)."""
    affected: Mapping[str, int]
    """Failed requests by bank."""
    clause: Clause

    def minutes(self, until: datetime) -> float:
        end = self.ended_at or until
        return max((end - self.started_at).total_seconds(), 0.0) / 60


PRIVATE = "private"
"""Field metadata: never written out (reports, JSON); derived from personal data."""


@dataclass(frozen=True, slots=True)
class HolderLink:
    """Ties a liability record to its holder: the holder's lookup token at the bank and the
    random salt of the record's `holder_ref`. Kept outside the evidence; erasure deletes it."""

    lookup_token: str
    salt: bytes

    def __repr__(self) -> str:
        return "HolderLink(...)"  # the token is derived from an ID number


def holder_ref(bank_id: str, lookup_token: str, salt: bytes) -> str:
    """The holder's reference in a record: SHA-256 over the salt, the bank and the token.
    With the link the bank shows whose record it is; without it (erased) nobody can."""
    return hashlib.sha256(
        salt + b"\x1f" + bank_id.encode() + b"\x1f" + lookup_token.encode()
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class LiabilityRecord:
    """One failed request and the clause that applies; an entry of the evidence log."""

    seq: int
    """Its place among liability records (the store's)."""
    request_id: str
    trace_id: str
    bank_id: str
    rpc: str
    at: datetime
    """When it was answered."""
    status_code: str
    reason: str
    clause: Clause
    evidence: Mapping[str, str]
    """Upstream codes, whether the platform was reached, the window's, incident's and
    outage's time ranges, the caller's error metadata..."""
    outage_id: str | None = None
    window_id: str | None = None
    incident_id: str | None = None
    holder_token: str | None = None
    """The holder's reference in the evidence: a commitment to the holder (`holder_ref`),
    never the ID number nor its lookup token. It leads to the holder only through the
    record's `HolderLink` row, which erasure deletes (A14); then it means nothing."""
    arrived_at: datetime | None = None
    """When the request arrived: what incidents and windows are judged on."""
    deadline_at: datetime | None = None
    """The caller's deadline, if it set one."""
    attempts: tuple[PlatformAttempt, ...] = ()
    """Each platform attempt of the failing operation."""
    window_version: int | None = None
    """The version of the window that applied."""
    log_index: int | None = None
    """Its leaf in the evidence log (the store's)."""
    holder_link: HolderLink | None = field(default=None, metadata={PRIVATE: True})
    """What ties `holder_token` to the holder: stored beside the record (for complaints),
    never in the evidence, a report or a log; erased with the holder."""

    @property
    def arrival(self) -> datetime:
        return self.arrived_at or self.at

    def placed(self, seq: int, log_index: int) -> LiabilityRecord:
        """The record as stored: its number and its leaf. (Spelled out: `replace` costs a
        sixth of an append's CPU.)"""
        return LiabilityRecord(
            seq, self.request_id, self.trace_id, self.bank_id, self.rpc, self.at,
            self.status_code, self.reason, self.clause, self.evidence, self.outage_id,
            self.window_id, self.incident_id, self.holder_token, self.arrived_at,
            self.deadline_at, self.attempts, self.window_version, log_index, self.holder_link,
        )  # fmt: skip


class AmendmentCause(StrEnum):
    INCIDENT_DECLARED = "INCIDENT_DECLARED"
    """An incident declared after the failures it covers."""


@dataclass(frozen=True, slots=True)
class Amendment:
    """A later finding that changes a record's clause. The record itself never changes: the
    amendment is an entry of its own in the evidence log, and reports show both."""

    amendment_id: str
    request_id: str
    clause: Clause
    previous_clause: Clause
    cause: AmendmentCause
    incident_id: str | None
    declared_by: str
    declared_at: datetime
    """When the finding was declared."""
    amended_at: datetime
    log_index: int | None = None


@dataclass(frozen=True, slots=True)
class WindowPart:
    """A stretch of a window's latest version with one clause: a window extended after it
    began is A16(1)(a) for the part announced in advance and the bank's for the rest."""

    window_id: str
    version: int
    starts_at: datetime
    ends_at: datetime
    clause: Clause


@dataclass(frozen=True, slots=True)
class Complaint:
    """A holder's complaint (A15): checked and handled within 15 working days."""

    accepted_on: date
    due_on: date


@dataclass(frozen=True, slots=True)
class LiabilityReport:
    generated_at: datetime
    since: datetime
    until: datetime
    bank_id: str | None
    records: tuple[LiabilityRecord, ...]
    outages: tuple[Outage, ...]
    windows: tuple[MaintenanceWindow, ...]
    """Every version of the windows in range, by window and version."""
    incidents: tuple[Incident, ...]
    checkpoint: str
    """The signed checkpoint of the evidence log the report was made from."""
    complaint: Complaint | None = None
    totals: Mapping[Clause, int] = field(default_factory=dict)
    """Failed requests per clause (as amended)."""
    outage_minutes: Mapping[Clause, float] = field(default_factory=dict)
    """Outage minutes within [since, until) per clause."""
    amendments: Mapping[str, tuple[Amendment, ...]] = field(default_factory=dict)
    """Amendments by request id, in order: the clause that stands is the last one's."""
    window_parts: tuple[WindowPart, ...] = ()
    """The parts of each window's latest version, with their clauses."""


@dataclass(frozen=True, slots=True)
class MonthlyStatement:
    bank_id: str
    month: str
    """YYYY-MM."""
    generated_at: datetime
    requests: int
    failed: int
    availability: float
    """Share of requests that did not fail because the service failed (platform, gateway,
    maintenance: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED), whatever the
    clause, except the holder's own faults (A16(2)); 0..1."""
    failed_by_clause: Mapping[Clause, int]
    outage_minutes: Mapping[Clause, float]
    checkpoint: str
    """The signed checkpoint of the evidence log (C2SP tlog-checkpoint) when it was made:
    whoever keeps it can later check that nothing before it was rewritten."""
