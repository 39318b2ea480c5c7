"""The platform's gRPC services: protobuf <-> `PlatformState` and the fault plan, nothing else.

Every error answer carries ErrorInfo (see `status.py`). Status details never carry names,
ID numbers, phones, passwords or codes.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.simplatform.faults import FaultError, Latency
from essc_gateway.simplatform.network import NetworkStats
from essc_gateway.simplatform.plan import FaultPlan
from essc_gateway.simplatform.scenario import (
    duration,
    rule_to_proto,
    scenario_from_proto,
    scenario_to_proto,
)
from essc_gateway.simplatform.state import (
    Card,
    CardStatus,
    CheckOutcome,
    ForbiddenError,
    IssueOutcome,
    IssueResult,
    NotFoundError,
    PasswordChange,
    PlatformState,
    PlatformStateError,
    PreconditionError,
)
from essc_gateway.simplatform.status import Context, abort

_CAPACITY: dict[str, pb.CivilCapacity.ValueType] = {
    "FULL": pb.CIVIL_CAPACITY_FULL,
    "LIMITED": pb.CIVIL_CAPACITY_LIMITED,
    "NONE": pb.CIVIL_CAPACITY_NONE,
}
_CARD_STATUS: dict[CardStatus, pb.CardStatus.ValueType] = {
    CardStatus.ACTIVE: pb.CARD_STATUS_ACTIVE,
    CardStatus.SUSPENDED: pb.CARD_STATUS_SUSPENDED,
    CardStatus.LOST_CONTINUED_USE: pb.CARD_STATUS_LOST_CONTINUED_USE,
    CardStatus.TERMINATED: pb.CARD_STATUS_TERMINATED,
}
_ISSUE_OUTCOME: dict[IssueOutcome, pb.IssueOutcome.ValueType] = {
    IssueOutcome.ISSUED: pb.ISSUE_OUTCOME_ISSUED,
    IssueOutcome.REPLAYED: pb.ISSUE_OUTCOME_REPLAYED,
    IssueOutcome.ALREADY_HELD: pb.ISSUE_OUTCOME_ALREADY_HELD,
}
_PERSONAL_STATUS: dict[str, pb.PersonalStatus.ValueType] = {
    "EMPLOYED": pb.PERSONAL_STATUS_EMPLOYED,
    "UNEMPLOYED": pb.PERSONAL_STATUS_UNEMPLOYED,
    "RETIRED": pb.PERSONAL_STATUS_RETIRED,
}
_INSURANCE: dict[str, pb.InsuranceType.ValueType] = {
    "PENSION": pb.INSURANCE_TYPE_PENSION,
    "MEDICAL": pb.INSURANCE_TYPE_MEDICAL,
    "UNEMPLOYMENT": pb.INSURANCE_TYPE_UNEMPLOYMENT,
    "WORK_INJURY": pb.INSURANCE_TYPE_WORK_INJURY,
    "MATERNITY": pb.INSURANCE_TYPE_MATERNITY,
}


def status_code_for(error: PlatformStateError) -> grpc.StatusCode:
    """The one mapping from state errors to gRPC status codes."""
    if isinstance(error, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, PreconditionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, ForbiddenError):
        return grpc.StatusCode.PERMISSION_DENIED
    return grpc.StatusCode.INTERNAL


@contextlib.asynccontextmanager
async def _state_errors(context: Context) -> AsyncIterator[None]:
    try:
        yield
    except PlatformStateError as error:
        await abort(context, status_code_for(error), str(error), error.reason)


async def _require(context: Context, **fields: str | bytes) -> None:
    """INVALID_ARGUMENT naming the first empty field (its name only, never a value)."""
    for name, value in fields.items():
        if not value:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{name} is required",
                "FIELD_REQUIRED",
                metadata={"field": name},
            )


async def _invalid_fault(context: Context, error: FaultError) -> None:
    await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error), "INVALID_FAULT")


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _card(card: Card) -> pb.Card:
    message = pb.Card(
        essc_id=card.essc_id,
        bank_id=card.bank_id,
        card_number=card.card_number,
        status=_CARD_STATUS[card.status],
        issued_at=_timestamp(card.issued_at),
    )
    if card.terminated_at is not None:
        message.terminated_at.CopyFrom(_timestamp(card.terminated_at))
    return message


def _result(outcome: CheckOutcome) -> pb.CheckResult:
    return pb.CheckResult(passed=outcome.passed, reason=outcome.reason)


def _issue_response(issued: IssueResult) -> pb.IssueCardResponse:
    return pb.IssueCardResponse(outcome=_ISSUE_OUTCOME[issued.outcome], card=_card(issued.card))


def _change_response(change: PasswordChange) -> pb.ChangePasswordResponse:
    response = pb.ChangePasswordResponse(changed=change.changed, reason=change.reason)
    if change.changed_at is not None:
        response.changed_at.CopyFrom(_timestamp(change.changed_at))
    return response


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    """Real name, real card, real person (A2)."""

    def __init__(self, state: PlatformState) -> None:
        self._state = state

    async def CheckRealName(
        self, request: pb.CheckRealNameRequest, context: Context
    ) -> pb.CheckRealNameResponse:
        await _require(context, id_number=request.id_number)
        outcome = self._state.check_real_name(request.name, request.id_number, request.mobile_phone)
        capacity = _CAPACITY.get(outcome.civil_capacity or "", pb.CIVIL_CAPACITY_UNSPECIFIED)
        return pb.CheckRealNameResponse(result=_result(outcome), civil_capacity=capacity)

    async def CheckRealCard(
        self, request: pb.CheckRealCardRequest, context: Context
    ) -> pb.CheckRealCardResponse:
        await _require(context, id_number=request.id_number)
        outcome = self._state.check_real_card(request.id_number, request.card_number)
        return pb.CheckRealCardResponse(result=_result(outcome))

    async def CheckRealPerson(
        self, request: pb.CheckRealPersonRequest, context: Context
    ) -> pb.CheckRealPersonResponse:
        await _require(context, id_number=request.id_number)
        outcome = self._state.check_real_person(request.id_number, request.biometric_sample)
        return pb.CheckRealPersonResponse(result=_result(outcome))


class CardServicer(pb_grpc.CardServiceServicer):
    """Issuing and managing e-SSCs (A3, A6, A12)."""

    def __init__(self, state: PlatformState) -> None:
        self._state = state

    async def IssueCard(
        self, request: pb.IssueCardRequest, context: Context
    ) -> pb.IssueCardResponse:
        await _require(
            context,
            idempotency_key=request.idempotency_key,
            bank_id=request.bank_id,
            id_number=request.id_number,
        )
        async with _state_errors(context):
            issued = self._state.issue_card(
                idempotency_key=request.idempotency_key,
                bank_id=request.bank_id,
                id_number=request.id_number,
                name=request.name,
                mobile_phone=request.mobile_phone,
                card_number=request.card_number,
                guardian_id_number=request.guardian_id_number,
            )
        return _issue_response(issued)

    async def GetCard(self, request: pb.GetCardRequest, context: Context) -> pb.GetCardResponse:
        await _require(context, essc_id=request.essc_id)
        async with _state_errors(context):
            card = self._state.get_card(request.essc_id)
        return pb.GetCardResponse(card=_card(card))

    async def AuthorizeContinuedUse(
        self, request: pb.AuthorizeContinuedUseRequest, context: Context
    ) -> pb.AuthorizeContinuedUseResponse:
        await _require(context, essc_id=request.essc_id)
        async with _state_errors(context):
            card = self._state.authorize_continued_use(request.essc_id)
        return pb.AuthorizeContinuedUseResponse(card=_card(card))

    async def TerminateCard(
        self, request: pb.TerminateCardRequest, context: Context
    ) -> pb.TerminateCardResponse:
        await _require(
            context,
            essc_id=request.essc_id,
            bank_id=request.bank_id,
            idempotency_key=request.idempotency_key,
        )
        async with _state_errors(context):
            card = self._state.terminate_card(
                request.essc_id, request.bank_id, request.idempotency_key
            )
        return pb.TerminateCardResponse(card=_card(card))


class AuthServicer(pb_grpc.AuthServiceServicer):
    """Password, SMS code and biometric factors (A7, A8, K1, K3)."""

    def __init__(self, state: PlatformState) -> None:
        self._state = state

    async def SendSmsCode(
        self, request: pb.SendSmsCodeRequest, context: Context
    ) -> pb.SendSmsCodeResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            expires_at = self._state.send_sms_code(request.id_number, request.purpose)
        return pb.SendSmsCodeResponse(expires_at=_timestamp(expires_at))

    async def VerifyPassword(
        self, request: pb.VerifyPasswordRequest, context: Context
    ) -> pb.VerifyPasswordResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            check = self._state.verify_password(request.id_number, request.password)
        return pb.VerifyPasswordResponse(matched=check.matched, is_initial=check.is_initial)

    async def VerifySmsCode(
        self, request: pb.VerifySmsCodeRequest, context: Context
    ) -> pb.VerifySmsCodeResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            check = self._state.verify_sms_code(request.id_number, request.code, request.purpose)
        return pb.VerifySmsCodeResponse(matched=check.matched, reason=check.reason)

    async def VerifyBiometric(
        self, request: pb.VerifyBiometricRequest, context: Context
    ) -> pb.VerifyBiometricResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            matched = self._state.verify_biometric(request.id_number, request.biometric_sample)
        return pb.VerifyBiometricResponse(matched=matched)

    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Context
    ) -> pb.ChangePasswordResponse:
        await _require(
            context,
            id_number=request.id_number,
            new_password=request.new_password,
            idempotency_key=request.idempotency_key,
        )
        async with _state_errors(context):
            change = self._state.change_password(
                request.id_number,
                request.current_password,
                request.new_password,
                request.idempotency_key,
            )
        return _change_response(change)


class RecordsServicer(pb_grpc.RecordsServiceServicer):
    """Social-security records on the card [K]."""

    def __init__(self, state: PlatformState) -> None:
        self._state = state

    async def GetPersonalStatus(
        self, request: pb.GetPersonalStatusRequest, context: Context
    ) -> pb.GetPersonalStatusResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            person = self._state.person(request.id_number)
        return pb.GetPersonalStatusResponse(status=_PERSONAL_STATUS[person.personal_status])

    async def GetContributions(
        self, request: pb.GetContributionsRequest, context: Context
    ) -> pb.GetContributionsResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            person = self._state.person(request.id_number)
        return pb.GetContributionsResponse(
            records=[
                pb.ContributionRecord(
                    insurance_type=_INSURANCE[record.insurance_type],
                    period=record.period,
                    base_fen=record.base_fen,
                    employer_fen=record.employer_fen,
                    personal_fen=record.personal_fen,
                )
                for record in person.contributions
            ]
        )

    async def GetAccounts(
        self, request: pb.GetAccountsRequest, context: Context
    ) -> pb.GetAccountsResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            person = self._state.person(request.id_number)
        return pb.GetAccountsResponse(
            pension_balance_fen=person.pension_balance_fen,
            medical_balance_fen=person.medical_balance_fen,
        )

    async def GetQualifications(
        self, request: pb.GetQualificationsRequest, context: Context
    ) -> pb.GetQualificationsResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            person = self._state.person(request.id_number)
        return pb.GetQualificationsResponse(
            qualifications=[
                pb.Qualification(
                    title=q.title,
                    level=q.level,
                    certificate_number=q.certificate_number,
                    issued_on=q.issued_on,
                )
                for q in person.qualifications
            ]
        )


class OperationServicer(pb_grpc.OperationServiceServicer):
    """What became of a keyed write whose answer the caller did not get."""

    def __init__(self, state: PlatformState) -> None:
        self._state = state

    async def GetOperation(
        self, request: pb.GetOperationRequest, context: Context
    ) -> pb.GetOperationResponse:
        await _require(context, idempotency_key=request.idempotency_key)
        result = self._state.operation(request.idempotency_key)
        if isinstance(result, IssueResult):
            return pb.GetOperationResponse(found=True, issue_card=_issue_response(result))
        if isinstance(result, Card):
            terminated = pb.TerminateCardResponse(card=_card(result))
            return pb.GetOperationResponse(found=True, terminate_card=terminated)
        if isinstance(result, PasswordChange):
            return pb.GetOperationResponse(found=True, change_password=_change_response(result))
        return pb.GetOperationResponse(found=False)


class ControlServicer(pb_grpc.ControlServiceServicer):
    """Test and administration surface; never exposed to banks."""

    def __init__(
        self,
        state: PlatformState,
        faults: FaultPlan,
        counts: Counter[str],
        network: NetworkStats,
    ) -> None:
        self._state = state
        self._faults = faults
        self._counts = counts
        self._network = network

    async def ReportCardLost(
        self, request: pb.ReportCardLostRequest, context: Context
    ) -> pb.ReportCardLostResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            self._state.report_card_lost(request.id_number)
        return pb.ReportCardLostResponse()

    async def ReplaceCard(
        self, request: pb.ReplaceCardRequest, context: Context
    ) -> pb.ReplaceCardResponse:
        await _require(context, id_number=request.id_number)
        async with _state_errors(context):
            number = self._state.replace_card(request.id_number)
        return pb.ReplaceCardResponse(new_card_number=number)

    async def ReadSmsInbox(
        self, request: pb.ReadSmsInboxRequest, context: Context
    ) -> pb.ReadSmsInboxResponse:
        await _require(context, mobile_phone=request.mobile_phone)
        return pb.ReadSmsInboxResponse(
            messages=[
                pb.SmsMessage(code=m.code, purpose=m.purpose, sent_at=_timestamp(m.sent_at))
                for m in self._state.sms_inbox(request.mobile_phone)
            ]
        )

    async def SetLatency(
        self, request: pb.SetLatencyRequest, context: Context
    ) -> pb.SetLatencyResponse:
        await _require(context, method=request.method)
        base, jitter = request.base.ToTimedelta(), request.jitter.ToTimedelta()
        try:
            self._faults.set_latency(request.method, Latency(base=base, jitter=jitter))
        except FaultError as error:
            await _invalid_fault(context, error)
        return pb.SetLatencyResponse()

    async def SetFaultScenario(
        self, request: pb.SetFaultScenarioRequest, context: Context
    ) -> pb.SetFaultScenarioResponse:
        try:
            scenario = scenario_from_proto(request.scenario)
        except FaultError as error:
            await _invalid_fault(context, error)
        self._faults.set_scenario(scenario)
        return pb.SetFaultScenarioResponse()

    async def ClearFaults(
        self, request: pb.ClearFaultsRequest, context: Context
    ) -> pb.ClearFaultsResponse:
        self._faults.clear()
        return pb.ClearFaultsResponse()

    async def GetFaultStatus(
        self, request: pb.GetFaultStatusRequest, context: Context
    ) -> pb.GetFaultStatusResponse:
        scenario = self._faults.scenario
        if scenario is None:
            return pb.GetFaultStatusResponse()
        response = pb.GetFaultStatusResponse(
            scenario=scenario_to_proto(scenario),
            elapsed=duration(timedelta(seconds=self._faults.elapsed())),
        )
        for active in self._faults.active_rules():
            entry = response.active_rules.add(index=active.index, rule=rule_to_proto(active.rule))
            if active.remaining is not None:
                entry.remaining.CopyFrom(duration(active.remaining))
        return response

    async def GetCallCounts(
        self, request: pb.GetCallCountsRequest, context: Context
    ) -> pb.GetCallCountsResponse:
        return pb.GetCallCountsResponse(
            counts=dict(self._counts),
            connections_accepted=self._network.accepted,
            connections_reset=self._network.reset,
        )

    async def ResetCallCounts(
        self, request: pb.ResetCallCountsRequest, context: Context
    ) -> pb.ResetCallCountsResponse:
        self._counts.clear()
        self._network.accepted = self._network.reset = 0
        return pb.ResetCallCountsResponse()
