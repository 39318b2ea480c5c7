"""Which liability clause (A16) applies to a failed request, and the evidence for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from essc_gateway.errors import ErrorReason
from essc_gateway.liability.incidents import IncidentBook
from essc_gateway.liability.model import Clause, window_clause
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.service.maintenance import MaintenanceCalendar

# A16(2): the holder's own fault (wrong password or SMS code, a lockout they caused).
_HOLDER_FAULTS = frozenset({ErrorReason.FACTOR_REJECTED, ErrorReason.HOLDER_LOCKED_OUT})
_PLATFORM_FAILURES = frozenset(
    {
        ErrorReason.PLATFORM_UNAVAILABLE,
        ErrorReason.PLATFORM_TIMEOUT,
        ErrorReason.PLATFORM_REJECTED,
        ErrorReason.PLATFORM_MAINTENANCE,
        ErrorReason.PLATFORM_CIRCUIT_OPEN,
    }
)
# Failures of the platform move to a declared incident overlapping them; the gateway's own
# (INTERNAL, shedding) stay the bank's, whatever the weather.
_SERVICE_FAILURES = _PLATFORM_FAILURES
# Error metadata worth keeping as evidence (never personal data: see errors.py).
_EVIDENCE_KEYS = frozenset(
    {
        "operation",
        "outcome",
        "attempts",
        "platform_reached",
        "upstream_code",
        "window_id",
        "kind",
        "announced_at",
        "announced_in_advance",
        "ends_at",
        "maintenance_window",
        "maintenance_overrun",
        "failed_factors",
        "remaining_attempts",
        "locked_until",
        "cause",
        "circuit_forced",
        "check_reason",
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    clause: Clause
    evidence: dict[str, str] = field(default_factory=dict)
    outage_id: str | None = None
    window_id: str | None = None
    incident_id: str | None = None


class Classifier:
    def __init__(
        self, calendar: MaintenanceCalendar, incidents: IncidentBook, outages: OutageTracker
    ) -> None:
        self._calendar = calendar
        self._incidents = incidents
        self._outages = outages

    def classify(
        self, at: datetime, status_code: str, reason: str, metadata: Mapping[str, str]
    ) -> Verdict:
        evidence = {k: v for k, v in metadata.items() if k in _EVIDENCE_KEYS}
        evidence.update({"status_code": status_code, "reason": reason})
        if reason in _HOLDER_FAULTS or metadata.get("check_reason") == "PHONE_MISMATCH":
            # A16(2) also covers a wrong phone number given (a guardian's, at Issue).
            return Verdict(Clause.A16_2, evidence)
        if metadata.get("cause") == "caller_deadline":
            # The bank's own deadline left no time for the platform: not the platform's fault.
            return Verdict(Clause.BANK, evidence)
        if reason in _SERVICE_FAILURES:
            incident = self._incidents.at(at)
            if incident is not None:
                evidence.update(
                    {
                        "incident_kind": incident.kind.value,
                        "incident_declared_at": incident.declared_at.isoformat(),
                    }
                )
                return Verdict(incident.kind.clause, evidence, incident_id=incident.incident_id)
        window_id = metadata.get("window_id") or metadata.get("maintenance_window")
        if window_id is not None and (window := self._calendar.get(window_id)) is not None:
            evidence.update(
                {
                    "window_kind": window.kind.value,
                    "window_starts_at": window.starts_at.isoformat(),
                    "window_ends_at": window.ends_at.isoformat(),
                    "window_announced_at": window.announced_at.isoformat(),
                }
            )
            return Verdict(window_clause(window), evidence, window_id=window_id)
        if reason in _PLATFORM_FAILURES:
            return self._platform_failure(reason, metadata, evidence)
        return Verdict(Clause.BANK, evidence)

    def _platform_failure(
        self, reason: str, metadata: Mapping[str, str], evidence: dict[str, str]
    ) -> Verdict:
        operation = metadata.get("operation", "")
        outage = self._outages.current(operation)
        if outage is not None:
            evidence.update(
                {
                    "outage_started_at": outage.started_at.isoformat(),
                    "outage_reached": str(outage.reached).lower(),
                }
            )
            return Verdict(outage.clause, evidence, outage_id=outage.outage_id)
        if reason == ErrorReason.PLATFORM_CIRCUIT_OPEN and metadata.get("circuit_forced") == "true":
            # An operator held the circuit open and no outage explains why: the bank's side.
            return Verdict(Clause.BANK, evidence)
        # Opened by the platform's failures, or sent and unanswered (in doubt): the platform's
        # side; only a platform never reached at all is a third party's (A16(1)(d)).
        reached = metadata.get("platform_reached") != "false"
        return Verdict(Clause.A16_1_B if reached else Clause.A16_1_D, evidence)
