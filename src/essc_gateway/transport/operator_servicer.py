"""OperatorService: maintenance windows, circuit breakers, incidents and reports, protobuf
<-> domain (the evidence log's RPCs are in `evidence_rpcs.py`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from essc.gateway.v1 import operator_pb2 as pb
from essc.gateway.v1 import operator_pb2_grpc as pb_grpc
from essc_gateway.access.log import AccessLog
from essc_gateway.domain.maintenance import (
    Announcement,
    MaintenanceWindow,
    NoticeChannel,
    WindowKind,
)
from essc_gateway.errors import FieldViolation, InvalidRequest
from essc_gateway.evidence.service import EvidenceService
from essc_gateway.keys.custodian import KeyCustodian
from essc_gateway.keys.dual_control import DualControl
from essc_gateway.liability import render
from essc_gateway.liability.incidents import IncidentBook
from essc_gateway.liability.model import Incident, IncidentKind
from essc_gateway.liability.reports import Reports
from essc_gateway.service.circuits import ForcedCircuits
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.service.replicas import HEARTBEAT_TIMEOUT, ReplicaRegistry
from essc_gateway.transport.access_rpcs import AccessRpcs
from essc_gateway.transport.context import calling_operator
from essc_gateway.transport.evidence_rpcs import EvidenceRpcs
from essc_gateway.transport.key_rpcs import KeyRpcs
from essc_gateway.transport.privacy_rpcs import PrivacyRpcs, PrivacyServices
from essc_gateway.transport.requests import timestamp_in_range
from essc_gateway.transport.responses import timestamp
from essc_gateway.upstream.breaker import Breakers

Context = grpc.aio.ServicerContext[Any, Any]
_KINDS = {
    pb.MAINTENANCE_KIND_BANK: WindowKind.BANK,
    pb.MAINTENANCE_KIND_PLATFORM: WindowKind.PLATFORM,
}
_KIND_PB = {kind: value for value, kind in _KINDS.items()}
_CHANNELS = {
    pb.NOTICE_CHANNEL_WEBSITE: NoticeChannel.WEBSITE,
    pb.NOTICE_CHANNEL_MOBILE_BANKING: NoticeChannel.MOBILE_BANKING,
}
_CHANNEL_PB = {channel: value for value, channel in _CHANNELS.items()}


def _announcement(channels: Iterable[pb.NoticeChannel.ValueType], notice: str) -> Announcement:
    """The public notice a request states, by the calling operator (A16(1)(a))."""
    unknown = [c for c in channels if c not in _CHANNELS]
    if unknown:
        raise InvalidRequest(
            [FieldViolation("channels", "must be WEBSITE or MOBILE_BANKING", "UNSPECIFIED")]
        )
    return Announcement(
        channels=frozenset(_CHANNELS[c] for c in channels),
        notice=notice.strip(),
        announced_by=calling_operator(),
    )


# Operations a circuit can be forced for before any call created its breaker.
PLATFORM_OPERATIONS = (
    "CheckRealName",
    "CheckRealCard",
    "CheckRealPerson",
    "IssueCard",
    "GetCard",
    "AuthorizeContinuedUse",
    "TerminateCard",
    "SendSmsCode",
    "VerifyPassword",
    "VerifySmsCode",
    "VerifyBiometric",
    "ChangePassword",
    "GetPersonalStatus",
    "GetContributions",
    "GetAccounts",
    "GetQualifications",
)


def _when(ts: Timestamp, field: str) -> datetime:
    if not timestamp_in_range(ts):
        raise InvalidRequest([FieldViolation(field, "is not a valid timestamp", "OUT_OF_RANGE")])
    return ts.ToDatetime(tzinfo=UTC)


def window_pb(window: MaintenanceWindow) -> pb.MaintenanceWindow:
    message = pb.MaintenanceWindow(
        window_id=window.window_id,
        kind=_KIND_PB[window.kind],
        starts_at=timestamp(window.starts_at),
        ends_at=timestamp(window.ends_at),
        rpcs=sorted(window.rpcs),
        reason=window.reason,
        announced_at=timestamp(window.announced_at),
        version=window.version,
    )
    if window.announcement is not None:
        message.channels.extend(
            _CHANNEL_PB[c] for c in sorted(window.announcement.channels, key=lambda c: c.value)
        )
        message.notice = window.announcement.notice
        message.announced_by = window.announcement.announced_by
    if window.amended_at is not None:
        message.amended_at.CopyFrom(timestamp(window.amended_at))
    if window.cancelled_at is not None:
        message.cancelled_at.CopyFrom(timestamp(window.cancelled_at))
    return message


_INCIDENT_KINDS = {getattr(pb, f"INCIDENT_KIND_{kind.value}"): kind for kind in IncidentKind}
_INCIDENT_KIND_PB = {kind: value for value, kind in _INCIDENT_KINDS.items()}
_FORMATS = {pb.REPORT_FORMAT_TABLE: "table", pb.REPORT_FORMAT_HTML: "html"}
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def incident_pb(incident: Incident) -> pb.Incident:
    return pb.Incident(
        incident_id=incident.incident_id,
        kind=_INCIDENT_KIND_PB[incident.kind],
        starts_at=timestamp(incident.starts_at),
        ends_at=timestamp(incident.ends_at),
        declared_at=timestamp(incident.declared_at),
        description=incident.description,
        clause=incident.kind.clause.value,
        declared_by=incident.declared_by,
    )


class OperatorServicer(
    EvidenceRpcs, KeyRpcs, AccessRpcs, PrivacyRpcs, pb_grpc.OperatorServiceServicer
):
    def __init__(
        self,
        calendar: MaintenanceCalendar,
        breakers: Breakers,
        incidents: IncidentBook,
        reports: Reports,
        evidence: EvidenceService,
        circuits: ForcedCircuits,
        replicas: ReplicaRegistry,
        custodian: KeyCustodian,
        dual_control: DualControl,
        access_log: AccessLog,
        privacy: PrivacyServices,
    ) -> None:
        EvidenceRpcs.__init__(self, evidence)
        KeyRpcs.__init__(self, custodian, dual_control)
        AccessRpcs.__init__(self, access_log)
        PrivacyRpcs.__init__(self, privacy)
        self._calendar = calendar
        self._breakers = breakers
        self._circuits = circuits
        self._replicas = replicas
        self._incidents = incidents
        self._reports = reports

    async def AnnounceMaintenance(
        self, request: pb.AnnounceMaintenanceRequest, context: Context
    ) -> pb.AnnounceMaintenanceResponse:
        violations = []
        if request.kind not in _KINDS:
            violations.append(FieldViolation("kind", "must be BANK or PLATFORM", "UNSPECIFIED"))
        for field in ("starts_at", "ends_at"):
            if not request.HasField(field):
                violations.append(FieldViolation(field, "is required", "REQUIRED"))
        if violations:
            raise InvalidRequest(violations)
        window = await self._calendar.announce(
            _KINDS[request.kind],
            _when(request.starts_at, "starts_at"),
            _when(request.ends_at, "ends_at"),
            frozenset(request.rpcs),
            request.reason,
            _announcement(request.channels, request.notice),
        )
        return pb.AnnounceMaintenanceResponse(window=window_pb(window))

    async def AmendMaintenance(
        self, request: pb.AmendMaintenanceRequest, context: Context
    ) -> pb.AmendMaintenanceResponse:
        window = await self._calendar.amend(
            request.window_id,
            _when(request.starts_at, "starts_at") if request.HasField("starts_at") else None,
            _when(request.ends_at, "ends_at") if request.HasField("ends_at") else None,
            frozenset(request.rpcs) if request.replace_rpcs else None,
            request.reason or None,
            _announcement(request.channels, request.notice),
        )
        return pb.AmendMaintenanceResponse(window=window_pb(window))

    async def CancelMaintenance(
        self, request: pb.CancelMaintenanceRequest, context: Context
    ) -> pb.CancelMaintenanceResponse:
        window = await self._calendar.cancel(
            request.window_id, _announcement(request.channels, request.notice)
        )
        return pb.CancelMaintenanceResponse(window=window_pb(window))

    async def ListMaintenance(
        self, request: pb.ListMaintenanceRequest, context: Context
    ) -> pb.ListMaintenanceResponse:
        windows = self._calendar.windows(current_only=request.current_only)
        return pb.ListMaintenanceResponse(windows=[window_pb(w) for w in windows])

    def _selected(self, operation: str) -> list[str]:
        if not operation:
            return list(PLATFORM_OPERATIONS)
        if operation not in PLATFORM_OPERATIONS:
            raise InvalidRequest(
                [FieldViolation("operation", "is not a platform operation", "UNKNOWN")]
            )
        return [operation]

    def _states(self, operations: list[str]) -> list[pb.CircuitState]:
        return [
            pb.CircuitState(operation=op, state=self._breakers[op].state.value) for op in operations
        ]

    async def ForceCircuitOpen(
        self, request: pb.ForceCircuitOpenRequest, context: Context
    ) -> pb.ForceCircuitOpenResponse:
        operations = self._selected(request.operation)
        if not request.HasField("until"):
            raise InvalidRequest([FieldViolation("until", "is required", "REQUIRED")])
        until = _when(request.until, "until")
        await self._circuits.force_open(operations, until)
        return pb.ForceCircuitOpenResponse(circuits=self._states(operations))

    async def ReleaseCircuit(
        self, request: pb.ReleaseCircuitRequest, context: Context
    ) -> pb.ReleaseCircuitResponse:
        operations = self._selected(request.operation)
        await self._circuits.release(operations)
        return pb.ReleaseCircuitResponse(circuits=self._states(operations))

    async def ListCircuits(
        self, request: pb.ListCircuitsRequest, context: Context
    ) -> pb.ListCircuitsResponse:
        return pb.ListCircuitsResponse(circuits=self._states(list(PLATFORM_OPERATIONS)))

    async def ListReplicas(
        self, request: pb.ListReplicasRequest, context: Context
    ) -> pb.ListReplicasResponse:
        now = self._replicas.clock.now()
        return pb.ListReplicasResponse(
            replicas=[
                pb.Replica(
                    replica_id=r.replica_id,
                    host=r.host,
                    pid=r.pid,
                    address=r.address,
                    version=r.version,
                    started_at=timestamp(r.started_at),
                    heartbeat_at=timestamp(r.heartbeat_at),
                    alive=r.alive_at(now, HEARTBEAT_TIMEOUT),
                )
                for r in await self._replicas.all()
            ]
        )

    async def DeclareIncident(
        self, request: pb.DeclareIncidentRequest, context: Context
    ) -> pb.DeclareIncidentResponse:
        if request.kind not in _INCIDENT_KINDS:
            raise InvalidRequest([FieldViolation("kind", "must name an incident", "UNSPECIFIED")])
        incident = await self._incidents.declare(
            _INCIDENT_KINDS[request.kind],
            _when(request.starts_at, "starts_at"),
            _when(request.ends_at, "ends_at"),
            request.description,
            calling_operator(),
        )
        return pb.DeclareIncidentResponse(incident=incident_pb(incident))

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: Context
    ) -> pb.ListIncidentsResponse:
        everything = self._incidents.all()
        return pb.ListIncidentsResponse(incidents=[incident_pb(i) for i in everything])

    async def GetLiabilityReport(
        self, request: pb.GetLiabilityReportRequest, context: Context
    ) -> pb.GetLiabilityReportResponse:
        violations = []
        for field in ("since", "until"):
            if not request.HasField(field):
                violations.append(FieldViolation(field, "is required", "REQUIRED"))
        accepted_on = None
        if request.complaint_accepted_on:
            try:
                accepted_on = date.fromisoformat(request.complaint_accepted_on)
            except ValueError:
                violations.append(
                    FieldViolation("complaint_accepted_on", "must be YYYY-MM-DD", "BAD_FORMAT")
                )
        if violations:
            raise InvalidRequest(violations)
        since, until = _when(request.since, "since"), _when(request.until, "until")
        if until <= since:
            raise InvalidRequest([FieldViolation("until", "must be after since", "INVALID")])
        report = await self._reports.report(
            since,
            until,
            bank_id=request.bank_id or None,
            holder_id=request.holder_social_security_number or None,
            complaint_accepted_on=accepted_on,
        )
        content_type, body = render.render_report(report, _FORMATS.get(request.format, "json"))
        return pb.GetLiabilityReportResponse(content_type=content_type, body=body)

    async def GetMonthlyStatement(
        self, request: pb.GetMonthlyStatementRequest, context: Context
    ) -> pb.GetMonthlyStatementResponse:
        violations = []
        if not request.bank_id:
            violations.append(FieldViolation("bank_id", "is required", "REQUIRED"))
        if not _MONTH.fullmatch(request.month):
            violations.append(FieldViolation("month", "must be YYYY-MM", "BAD_FORMAT"))
        if violations:
            raise InvalidRequest(violations)
        statement = await self._reports.monthly(request.bank_id, request.month)
        content_type, body = render.render_statement(
            statement, _FORMATS.get(request.format, "json")
        )
        return pb.GetMonthlyStatementResponse(content_type=content_type, body=body)
