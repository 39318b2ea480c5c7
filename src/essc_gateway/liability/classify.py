"""Which liability clause (A16) applies to a failed request, and the evidence for it.

Every judgement is on the request's arrival time: an incident or window that covered the
request when it came covers it, however long the platform then kept it waiting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from essc_gateway.errors import (
    ErrorReason,
    FailureCause,
    GatewayError,
    PlatformFacts,
    Reach,
)
from essc_gateway.liability.incidents import IncidentBook
from essc_gateway.liability.model import Clause, Incident, window_clause
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.service.maintenance import MaintenanceCalendar

_PLATFORM_FAILURES = frozenset(
    {
        ErrorReason.PLATFORM_UNAVAILABLE,
        ErrorReason.PLATFORM_TIMEOUT,
        ErrorReason.PLATFORM_REJECTED,
        ErrorReason.PLATFORM_MAINTENANCE,
        ErrorReason.PLATFORM_CIRCUIT_OPEN,
    }
)
# Error metadata worth keeping as evidence (never personal data: see errors.py).
_EVIDENCE_KEYS = frozenset(
    {
        "operation",
        "outcome",
        "attempts",
        "platform_reached",
        "upstream_code",
        "window_id",
        "window_version",
        "kind",
        "announced_at",
        "announced_in_advance",
        "ends_at",
        "maintenance_window",
        "maintenance_overrun",
        "failed_factors",
        "remaining_attempts",
        "locked_until",
        "consecutive_failures",
        "in_progress",
        "cause",
        "circuit_forced",
        "check_reason",
    }
)


def holder_at_fault(reason: str, metadata: Mapping[str, str]) -> bool:
    """A16(2) needs evidence of the holder's own error: a wrong factor, a lockout that wrong
    factors caused, or a wrong phone number given. A check refused because other checks of
    the same holder were in progress is not the holder's error."""
    if reason == ErrorReason.FACTOR_REJECTED:
        return True
    if reason == ErrorReason.HOLDER_LOCKED_OUT:
        return "locked_until" in metadata
    return metadata.get("check_reason") == "PHONE_MISMATCH"


def platform_facts(error: GatewayError) -> PlatformFacts:
    """The typed facts of a platform operation's failure (none known for any other)."""
    return error.platform or _NO_FACTS


_NO_FACTS = PlatformFacts()


def incident_applies(reason: str, facts: PlatformFacts) -> bool:
    """Failures of the platform move to a declared incident covering their arrival; the
    gateway's own (INTERNAL, shedding) and those of the bank's own short deadline stay where
    they are, whatever the weather."""
    return reason in _PLATFORM_FAILURES and facts.cause is not FailureCause.CALLER_DEADLINE


def incident_evidence(incident: Incident) -> dict[str, str]:
    return {
        "incident_kind": incident.kind.value,
        "incident_starts_at": incident.starts_at.isoformat(),
        "incident_ends_at": incident.ends_at.isoformat(),
        "incident_declared_at": incident.declared_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    clause: Clause
    evidence: dict[str, str] = field(default_factory=dict)
    outage_id: str | None = None
    window_id: str | None = None
    window_version: int | None = None
    incident_id: str | None = None


class Classifier:
    def __init__(
        self, calendar: MaintenanceCalendar, incidents: IncidentBook, outages: OutageTracker
    ) -> None:
        self._calendar = calendar
        self._incidents = incidents
        self._outages = outages

    def classify(
        self, rpc: str, arrived_at: datetime, status_code: str, error: GatewayError
    ) -> Verdict:
        reason, metadata, facts = error.reason.value, error.metadata, platform_facts(error)
        evidence = {k: v for k, v in error.details().items() if k in _EVIDENCE_KEYS}
        evidence.update({"status_code": status_code, "reason": reason})
        if holder_at_fault(reason, metadata):
            return Verdict(Clause.A16_2, evidence)
        if facts.cause is FailureCause.CALLER_DEADLINE:
            # The bank's own deadline left no time for the platform: not the platform's fault.
            return Verdict(Clause.BANK, evidence)
        if incident_applies(reason, facts):
            incident = self._incidents.at(arrived_at)
            if incident is not None:
                evidence.update(incident_evidence(incident))
                return Verdict(incident.kind.clause, evidence, incident_id=incident.incident_id)
        window_id = metadata.get("window_id")
        if window_id is not None and self._calendar.get(window_id) is not None:
            return self._window(rpc, arrived_at, window_id, metadata, evidence)
        if reason in _PLATFORM_FAILURES:
            # After a window ended too: the clause follows what failed (the platform answered
            # with errors), not the window; an overrun stays in the evidence.
            return self._platform_failure(reason, facts, evidence)
        return Verdict(Clause.BANK, evidence)

    def _window(
        self,
        rpc: str,
        arrived_at: datetime,
        window_id: str,
        metadata: Mapping[str, str],
        evidence: dict[str, str],
    ) -> Verdict:
        """A request refused in a window: A16(1)(a) if the part of the window covering it was
        announced publicly the minimum notice before that part began (A16(1)(b) for the
        platform's own window), else the bank's."""
        applied = metadata.get("window_version", "")
        notice = self._calendar.notice(
            window_id, rpc, arrived_at, int(applied) if applied.isdigit() else None
        )
        history = self._calendar.history(window_id)
        version = next(
            (w for w in history if notice is not None and w.version == notice.applied_version),
            history[-1],
        )
        evidence.update(
            {
                "window_kind": version.kind.value,
                "window_starts_at": version.starts_at.isoformat(),
                "window_ends_at": version.ends_at.isoformat(),
                "window_announced_at": version.announced_at.isoformat(),
                "window_version": str(version.version),
                "window_min_notice_s": str(int(self._calendar.min_notice.total_seconds())),
            }
        )
        if notice is not None:
            evidence.update(
                {
                    "window_part_version": str(notice.part_version),
                    "window_part_starts_at": notice.part_starts_at.isoformat(),
                    "window_part_announced_at": notice.part_announced_at.isoformat(),
                    "window_notice_public": str(notice.public).lower(),
                }
            )
        in_advance = notice is not None and notice.in_advance
        return Verdict(
            window_clause(version.kind, in_advance),
            evidence,
            window_id=window_id,
            window_version=version.version,
        )

    def _platform_failure(
        self, reason: str, facts: PlatformFacts, evidence: dict[str, str]
    ) -> Verdict:
        outage = self._outages.current(facts.operation)
        if outage is not None:
            evidence.update(
                {
                    "outage_started_at": outage.started_at.isoformat(),
                    "outage_reached": str(outage.reached).lower(),
                }
            )
            return Verdict(outage.clause, evidence, outage_id=outage.outage_id)
        if reason == ErrorReason.PLATFORM_CIRCUIT_OPEN and facts.circuit_forced:
            # An operator held the circuit open and no outage explains why: the bank's side.
            return Verdict(Clause.BANK, evidence)
        # Opened by the platform's failures, or sent and unanswered (in doubt): the platform's
        # side; only a platform never reached at all is a third party's (A16(1)(d)).
        if facts.reach is Reach.NOT_REACHED:
            return Verdict(Clause.A16_1_D, evidence)
        return Verdict(Clause.A16_1_B, evidence)
