"""`Platform` over gRPC: the gateway's client of the national platform.

Every call gets a timeout no later than the caller's own deadline, and every gRPC failure is
mapped once, here, into the gateway's error tree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import propagate

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.domain.models import (
    CardStatus,
    CheckResult,
    CivilCapacity,
    Contribution,
    IssueOutcome,
    Qualification,
)
from essc_gateway.errors import (
    AlreadyExists,
    ErrorReason,
    GatewayError,
    InternalError,
    NotFound,
    PermissionDenied,
    PlatformError,
    PlatformFacts,
    PlatformTimeout,
    PlatformUnavailable,
    PreconditionFailed,
)
from essc_gateway.upstream.outcomes import MAINTENANCE_REASON, AttemptFailure
from essc_gateway.upstream.port import (
    IssueCardCommand,
    NameCheck,
    PasswordChange,
    PasswordCheck,
    PlatformCard,
    PlatformIssue,
    SmsCheck,
)
from essc_gateway.upstream.retrying import OperationKind, ResilientCaller

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_CAPACITY = {
    pb.CIVIL_CAPACITY_FULL: CivilCapacity.FULL,
    pb.CIVIL_CAPACITY_LIMITED: CivilCapacity.LIMITED,
    pb.CIVIL_CAPACITY_NONE: CivilCapacity.NONE,
}
_CARD_STATUS = {
    pb.CARD_STATUS_ACTIVE: CardStatus.ACTIVE,
    pb.CARD_STATUS_SUSPENDED: CardStatus.SUSPENDED,
    pb.CARD_STATUS_LOST_CONTINUED_USE: CardStatus.LOST_CONTINUED_USE,
    pb.CARD_STATUS_TERMINATED: CardStatus.TERMINATED,
}
_PERSONAL_STATUS = {
    pb.PERSONAL_STATUS_EMPLOYED: "EMPLOYED",
    pb.PERSONAL_STATUS_UNEMPLOYED: "UNEMPLOYED",
    pb.PERSONAL_STATUS_RETIRED: "RETIRED",
}
_INSURANCE_TYPE = {
    pb.INSURANCE_TYPE_PENSION: "PENSION",
    pb.INSURANCE_TYPE_MEDICAL: "MEDICAL",
    pb.INSURANCE_TYPE_UNEMPLOYMENT: "UNEMPLOYMENT",
    pb.INSURANCE_TYPE_WORK_INJURY: "WORK_INJURY",
    pb.INSURANCE_TYPE_MATERNITY: "MATERNITY",
}
_ISSUE_OUTCOME = {
    pb.ISSUE_OUTCOME_ISSUED: IssueOutcome.ISSUED,
    pb.ISSUE_OUTCOME_REPLAYED: IssueOutcome.REPLAYED,
    pb.ISSUE_OUTCOME_ALREADY_HELD: IssueOutcome.ALREADY_HELD,
}


# The platform's business refusals: the error class and the reason when the platform's own
# ErrorInfo reason is not one of our catalogue (CARD_NOT_FOUND, IDEMPOTENCY_KEY_REUSED...).
_REFUSALS: dict[grpc.StatusCode, tuple[type[GatewayError], ErrorReason]] = {
    grpc.StatusCode.NOT_FOUND: (NotFound, ErrorReason.PERSON_NOT_FOUND),
    grpc.StatusCode.FAILED_PRECONDITION: (PreconditionFailed, ErrorReason.IDENTITY_MISMATCH),
    grpc.StatusCode.PERMISSION_DENIED: (PermissionDenied, ErrorReason.PLATFORM_REFUSED),
    grpc.StatusCode.ALREADY_EXISTS: (AlreadyExists, ErrorReason.CARD_HELD_BY_OTHER_BANK),
    grpc.StatusCode.OUT_OF_RANGE: (PreconditionFailed, ErrorReason.PLATFORM_REFUSED),
    # The platform found our request malformed: a gateway bug (bank-liable), never retried.
    grpc.StatusCode.INVALID_ARGUMENT: (InternalError, ErrorReason.INTERNAL),
}


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """W3C trace context of the current span (the attempt's), for the platform. Injected here
    rather than by OpenTelemetry's client interceptor: the attempt span already stands for
    the call, and an intercepted channel costs more per call than the whole span (measured)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


def map_rpc_error(
    error: grpc.aio.AioRpcError, failure: AttemptFailure, operation: str
) -> GatewayError:
    """The one place where a platform failure becomes a gateway error."""
    code = failure.code
    refusal = _REFUSALS.get(code)
    if refusal is not None:
        error_type, default = refusal
        reason = (
            ErrorReason(failure.reason) if failure.reason in ErrorReason.__members__ else default
        )
        return error_type(f"{operation}: refused by the platform", reason=reason)
    if failure.reason == MAINTENANCE_REASON:
        return PlatformUnavailable(
            f"{operation}: platform in announced maintenance",
            upstream_code=code.name,
            reason=ErrorReason.PLATFORM_MAINTENANCE,
            platform=PlatformFacts(operation),
            retry_after=failure.retry_after,
        )
    platform_error: type[PlatformError] = PlatformError
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        platform_error = PlatformTimeout
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        platform_error = PlatformUnavailable
    # Anything else (INTERNAL, UNKNOWN...) is a fault on the platform's side or in our contract.
    return platform_error(
        f"{operation}: platform failed with {code.name}",
        upstream_code=code.name,
        platform=PlatformFacts(operation),
        retry_after=failure.retry_after,
    )


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _unexpected(what: str) -> PlatformError:
    """An answer we cannot read: fail closed, never guess (an unknown status is not ACTIVE)."""
    return PlatformError(f"platform answered an unknown {what}", upstream_code="OK")


def _card(card: pb.Card) -> PlatformCard:
    status = _CARD_STATUS.get(card.status)
    if status is None:
        raise _unexpected("card status")
    return PlatformCard(
        essc_id=card.essc_id,
        bank_id=card.bank_id,
        card_number=card.card_number,
        status=status,
        issued_at=_dt(card.issued_at),
        terminated_at=_dt(card.terminated_at) if card.HasField("terminated_at") else None,
    )


def _check(result: pb.CheckResult) -> CheckResult:
    return CheckResult(passed=result.passed, reason=result.reason)


class _Stubs:
    """The platform's service stubs over one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.operations = pb_grpc.OperationServiceStub(channel)
        self.identity = pb_grpc.IdentityServiceStub(channel)
        self.cards = pb_grpc.CardServiceStub(channel)
        self.auth = pb_grpc.AuthServiceStub(channel)
        self.records = pb_grpc.RecordsServiceStub(channel)


class GrpcPlatform:
    """Client of the platform's gRPC services over one channel."""

    def __init__(self, channel: grpc.aio.Channel, caller: ResilientCaller) -> None:
        self._caller = caller
        self._channel = channel
        self._stubs = _Stubs(channel)

    def use_channel(self, channel: grpc.aio.Channel) -> grpc.aio.Channel:
        """Calls from now on go over `channel` (one with reloaded certificates); returns the
        channel used until now, which the caller closes once its calls are done."""
        old, self._channel = self._channel, channel
        self._stubs = _Stubs(channel)
        return old

    async def _invoke(
        self,
        operation: str,
        rpc: Callable[[_Stubs], grpc.aio.UnaryUnaryMultiCallable[Req, Resp]],
        request: Req,
        kind: OperationKind = OperationKind.READ,
        recover: Callable[[float], Awaitable[Resp | None]] | None = None,
    ) -> Resp:
        # The method is looked up at each attempt: a retry after a certificate reload must go
        # over the new channel, the old one is closed once its in-flight calls are done.
        async def attempt(seconds: float) -> Resp:
            return await rpc(self._stubs)(request, timeout=seconds, metadata=trace_metadata())

        return await self._caller.call(operation, kind, attempt, recover)

    def _recover(
        self, idempotency_key: str, field: str, answer: type[Resp]
    ) -> Callable[[float], Awaitable[Resp | None]]:
        """Asks the platform what became of an in-doubt write with this key."""

        async def recover(seconds: float) -> Resp | None:
            reply = await self._stubs.operations.GetOperation(
                pb.GetOperationRequest(idempotency_key=idempotency_key), timeout=seconds
            )
            if not reply.found or reply.WhichOneof("result") != field:
                return None
            result = getattr(reply, field)
            return result if isinstance(result, answer) else None

        return recover

    async def check_real_name(self, name: str, id_number: str, mobile_phone: str) -> NameCheck:
        reply = await self._invoke(
            "CheckRealName",
            lambda stubs: stubs.identity.CheckRealName,
            pb.CheckRealNameRequest(name=name, id_number=id_number, mobile_phone=mobile_phone),
        )
        capacity = _CAPACITY.get(reply.civil_capacity, CivilCapacity.UNSPECIFIED)
        return NameCheck(result=_check(reply.result), civil_capacity=capacity)

    async def check_real_card(self, id_number: str, card_number: str) -> CheckResult:
        reply = await self._invoke(
            "CheckRealCard",
            lambda stubs: stubs.identity.CheckRealCard,
            pb.CheckRealCardRequest(id_number=id_number, card_number=card_number),
        )
        return _check(reply.result)

    async def check_real_person(self, id_number: str, biometric_sample: bytes) -> CheckResult:
        reply = await self._invoke(
            "CheckRealPerson",
            lambda stubs: stubs.identity.CheckRealPerson,
            pb.CheckRealPersonRequest(id_number=id_number, biometric_sample=biometric_sample),
        )
        return _check(reply.result)

    async def issue_card(self, command: IssueCardCommand) -> PlatformIssue:
        reply = await self._invoke(
            "IssueCard",
            lambda stubs: stubs.cards.IssueCard,
            pb.IssueCardRequest(
                idempotency_key=command.idempotency_key,
                bank_id=command.bank_id,
                id_number=command.id_number,
                name=command.name,
                mobile_phone=command.mobile_phone,
                card_number=command.card_number,
                guardian_id_number=command.guardian_id_number,
            ),
            OperationKind.KEYED_WRITE,
            self._recover(command.idempotency_key, "issue_card", pb.IssueCardResponse),
        )
        outcome = _ISSUE_OUTCOME.get(reply.outcome)
        if outcome is None:
            raise PlatformError("IssueCard: no outcome in answer", upstream_code="OK")
        return PlatformIssue(outcome=outcome, card=_card(reply.card))

    async def lookup_issue(self, idempotency_key: str) -> PlatformIssue | None:
        reply = await self._invoke(
            "GetOperation",
            lambda stubs: stubs.operations.GetOperation,
            pb.GetOperationRequest(idempotency_key=idempotency_key),
        )
        if not reply.found or reply.WhichOneof("result") != "issue_card":
            return None
        outcome = _ISSUE_OUTCOME.get(reply.issue_card.outcome)
        if outcome is None:
            raise PlatformError("GetOperation: no issue outcome in answer", upstream_code="OK")
        return PlatformIssue(outcome=outcome, card=_card(reply.issue_card.card))

    async def get_card(self, essc_id: str) -> PlatformCard:
        reply = await self._invoke(
            "GetCard", lambda stubs: stubs.cards.GetCard, pb.GetCardRequest(essc_id=essc_id)
        )
        return _card(reply.card)

    async def authorize_continued_use(self, essc_id: str) -> PlatformCard:
        reply = await self._invoke(
            "AuthorizeContinuedUse",
            lambda stubs: stubs.cards.AuthorizeContinuedUse,
            pb.AuthorizeContinuedUseRequest(essc_id=essc_id),
        )
        return _card(reply.card)

    async def terminate_card(
        self, essc_id: str, bank_id: str, idempotency_key: str
    ) -> PlatformCard:
        reply = await self._invoke(
            "TerminateCard",
            lambda stubs: stubs.cards.TerminateCard,
            pb.TerminateCardRequest(
                essc_id=essc_id, bank_id=bank_id, idempotency_key=idempotency_key
            ),
            OperationKind.KEYED_WRITE,
            self._recover(idempotency_key, "terminate_card", pb.TerminateCardResponse),
        )
        return _card(reply.card)

    async def send_sms_code(self, id_number: str, purpose: str) -> datetime:
        reply = await self._invoke(
            "SendSmsCode",
            lambda stubs: stubs.auth.SendSmsCode,
            pb.SendSmsCodeRequest(id_number=id_number, purpose=purpose),
            OperationKind.UNSAFE,
        )
        return _dt(reply.expires_at)

    async def verify_password(self, id_number: str, password: str) -> PasswordCheck:
        reply = await self._invoke(
            "VerifyPassword",
            lambda stubs: stubs.auth.VerifyPassword,
            pb.VerifyPasswordRequest(id_number=id_number, password=password),
        )
        return PasswordCheck(matched=reply.matched, is_initial=reply.is_initial)

    async def verify_sms_code(self, id_number: str, code: str, purpose: str) -> SmsCheck:
        reply = await self._invoke(
            "VerifySmsCode",
            lambda stubs: stubs.auth.VerifySmsCode,
            pb.VerifySmsCodeRequest(id_number=id_number, code=code, purpose=purpose),
            OperationKind.UNSAFE,
        )
        return SmsCheck(matched=reply.matched, reason=reply.reason)

    async def verify_biometric(self, id_number: str, biometric_sample: bytes) -> bool:
        reply = await self._invoke(
            "VerifyBiometric",
            lambda stubs: stubs.auth.VerifyBiometric,
            pb.VerifyBiometricRequest(id_number=id_number, biometric_sample=biometric_sample),
        )
        return reply.matched

    async def change_password(
        self, id_number: str, current: str, new: str, idempotency_key: str
    ) -> PasswordChange:
        reply = await self._invoke(
            "ChangePassword",
            lambda stubs: stubs.auth.ChangePassword,
            pb.ChangePasswordRequest(
                id_number=id_number,
                current_password=current,
                new_password=new,
                idempotency_key=idempotency_key,
            ),
            OperationKind.KEYED_WRITE,
            self._recover(idempotency_key, "change_password", pb.ChangePasswordResponse),
        )
        changed_at = _dt(reply.changed_at) if reply.HasField("changed_at") else None
        return PasswordChange(changed=reply.changed, reason=reply.reason, changed_at=changed_at)

    async def personal_status(self, id_number: str) -> str:
        reply = await self._invoke(
            "GetPersonalStatus",
            lambda stubs: stubs.records.GetPersonalStatus,
            pb.GetPersonalStatusRequest(id_number=id_number),
        )
        status = _PERSONAL_STATUS.get(reply.status)
        if status is None:
            raise _unexpected("personal status")
        return status

    async def contributions(self, id_number: str) -> tuple[Contribution, ...]:
        reply = await self._invoke(
            "GetContributions",
            lambda stubs: stubs.records.GetContributions,
            pb.GetContributionsRequest(id_number=id_number),
        )
        if any(r.insurance_type not in _INSURANCE_TYPE for r in reply.records):
            raise _unexpected("insurance type")
        return tuple(
            Contribution(
                insurance_type=_INSURANCE_TYPE[r.insurance_type],
                period=r.period,
                base_fen=r.base_fen,
                employer_fen=r.employer_fen,
                personal_fen=r.personal_fen,
            )
            for r in reply.records
        )

    async def accounts(self, id_number: str) -> tuple[int, int]:
        reply = await self._invoke(
            "GetAccounts",
            lambda stubs: stubs.records.GetAccounts,
            pb.GetAccountsRequest(id_number=id_number),
        )
        return reply.pension_balance_fen, reply.medical_balance_fen

    async def qualifications(self, id_number: str) -> tuple[Qualification, ...]:
        reply = await self._invoke(
            "GetQualifications",
            lambda stubs: stubs.records.GetQualifications,
            pb.GetQualificationsRequest(id_number=id_number),
        )
        return tuple(
            Qualification(
                title=q.title,
                level=q.level,
                certificate_number=q.certificate_number,
                issued_on=q.issued_on,
            )
            for q in reply.qualifications
        )

    async def close(self) -> None:
        await self._channel.close()
