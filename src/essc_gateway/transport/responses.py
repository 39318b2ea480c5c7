"""Domain results -> protobuf responses."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.domain.models import (
    AuthResult,
    AuthState,
    CardStatus,
    CardView,
    CheckResult,
    CivilCapacity,
    Factor,
    IssueOutcome,
    IssueResult,
    IssueState,
    IssueStatus,
    SocialSecurityInfo,
    Verification,
)

_CHECK = {True: pb.CHECK_OUTCOME_PASSED, False: pb.CHECK_OUTCOME_FAILED}
_CAPACITY = {
    CivilCapacity.UNSPECIFIED: pb.CIVIL_CAPACITY_UNSPECIFIED,
    CivilCapacity.FULL: pb.CIVIL_CAPACITY_FULL,
    CivilCapacity.LIMITED: pb.CIVIL_CAPACITY_LIMITED,
    CivilCapacity.NONE: pb.CIVIL_CAPACITY_NONE,
}
_CARD_STATUS = {
    CardStatus.ACTIVE: pb.CARD_STATUS_ACTIVE,
    CardStatus.SUSPENDED: pb.CARD_STATUS_SUSPENDED,
    CardStatus.LOST_CONTINUED_USE: pb.CARD_STATUS_LOST_CONTINUED_USE,
    CardStatus.TERMINATED: pb.CARD_STATUS_TERMINATED,
}
_ISSUE_OUTCOME = {
    IssueOutcome.ISSUED: pb.ISSUE_OUTCOME_ISSUED,
    IssueOutcome.REPLAYED: pb.ISSUE_OUTCOME_REPLAYED,
    IssueOutcome.ALREADY_HELD: pb.ISSUE_OUTCOME_ALREADY_HELD,
    IssueOutcome.PENDING: pb.ISSUE_OUTCOME_PENDING,
}
_ISSUE_STATE = {
    IssueState.PENDING: pb.ISSUE_STATE_PENDING,
    IssueState.COMPLETED: pb.ISSUE_STATE_COMPLETED,
    IssueState.FAILED: pb.ISSUE_STATE_FAILED,
    IssueState.IN_PROGRESS: pb.ISSUE_STATE_IN_PROGRESS,
    IssueState.IN_DOUBT: pb.ISSUE_STATE_IN_DOUBT,
}
_AUTH_STATE = {
    AuthState.AUTHENTICATED: pb.AUTHENTICATION_STATE_AUTHENTICATED,
    AuthState.PASSWORD_CHANGE_REQUIRED: pb.AUTHENTICATION_STATE_PASSWORD_CHANGE_REQUIRED,
}
_FACTOR = {
    Factor.PASSWORD: pb.FACTOR_PASSWORD,
    Factor.SMS_CODE: pb.FACTOR_SMS_CODE,
    Factor.BIOMETRIC: pb.FACTOR_BIOMETRIC,
}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _check(result: CheckResult) -> pb.CheckResult:
    return pb.CheckResult(outcome=_CHECK[result.passed], reason=result.reason)


def card(view: CardView) -> pb.Card:
    return pb.Card(
        essc_id=view.essc_id,
        physical_card_number_masked=view.physical_card_number_masked,
        status=_CARD_STATUS[view.status],
        issued_at=timestamp(view.issued_at),
        agreement_version=view.agreement_version,
    )


def verify_response(result: Verification) -> pb.VerifyResponse:
    response = pb.VerifyResponse(
        real_name=_check(result.real_name),
        real_card=_check(result.real_card),
        real_person=_check(result.real_person),
        verified=result.verified,
        civil_capacity=_CAPACITY[result.civil_capacity],
        guardian_required=result.guardian_required,
        verification_token=result.token,
    )
    if result.token_expires_at is not None:
        response.token_expires_at.CopyFrom(timestamp(result.token_expires_at))
    return response


def issue_response(result: IssueResult) -> pb.IssueResponse:
    response = pb.IssueResponse(outcome=_ISSUE_OUTCOME[result.outcome])
    if result.card is not None:
        response.card.CopyFrom(card(result.card))
    if result.forward_after is not None:
        response.forward_after.CopyFrom(timestamp(result.forward_after))
    return response


def issue_status_response(status: IssueStatus) -> pb.GetIssueStatusResponse:
    response = pb.GetIssueStatusResponse(
        state=_ISSUE_STATE[status.state],
        failure_reason=status.failure_reason,
        accepted_at=timestamp(status.accepted_at),
    )
    if status.outcome is not None:
        response.outcome = _ISSUE_OUTCOME[status.outcome]
    if status.card is not None:
        response.card.CopyFrom(card(status.card))
    if status.completed_at is not None:
        response.completed_at.CopyFrom(timestamp(status.completed_at))
    return response


def authenticate_response(result: AuthResult) -> pb.AuthenticateResponse:
    response = pb.AuthenticateResponse(
        state=_AUTH_STATE[result.state],
        auth_token=result.token,
        verified_factors=[_FACTOR[f] for f in result.verified_factors],
    )
    if result.expires_at is not None:
        response.expires_at.CopyFrom(timestamp(result.expires_at))
    return response


def query_response(info: SocialSecurityInfo) -> pb.QueryResponse:
    return pb.QueryResponse(
        card=card(info.card),
        personal_status=pb.PersonalStatus.Value(f"PERSONAL_STATUS_{info.personal_status}"),
        contributions=[
            pb.ContributionRecord(
                insurance_type=pb.InsuranceType.Value(f"INSURANCE_TYPE_{c.insurance_type}"),
                period=c.period,
                base_fen=c.base_fen,
                employer_fen=c.employer_fen,
                personal_fen=c.personal_fen,
            )
            for c in info.contributions
        ],
        pension_balance_fen=info.pension_balance_fen,
        medical_balance_fen=info.medical_balance_fen,
        qualifications=[
            pb.Qualification(
                title=q.title,
                level=q.level,
                certificate_number=q.certificate_number,
                issued_on=q.issued_on,
            )
            for q in info.qualifications
        ],
    )
