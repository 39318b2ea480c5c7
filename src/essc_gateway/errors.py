"""The gateway's one error tree. Mapped to gRPC status and google.rpc details in one place:
`essc_gateway.transport.status`.

    GatewayError                     reason from ErrorReason, safe message, metadata
    ├── InvalidRequest               INVALID_ARGUMENT, one FieldViolation per bad field
    │   └── MalformedRequest         the body is not a message of the method's type
    ├── Unauthenticated              UNAUTHENTICATED (bank credentials, auth token, holder factors)
    ├── PermissionDenied             PERMISSION_DENIED
    ├── NotFound                     NOT_FOUND
    ├── AlreadyExists                ALREADY_EXISTS
    ├── PreconditionFailed           FAILED_PRECONDITION
    ├── Conflict                     ABORTED (retry the same request later)
    ├── ResourceExhausted            RESOURCE_EXHAUSTED, with retry_after
    ├── MaintenanceInProgress        UNAVAILABLE, with retry_after (the window's end)
    ├── PlatformError                the national platform failed us
    │   ├── PlatformUnavailable      UNAVAILABLE, with retry_after when known
    │   └── PlatformTimeout          DEADLINE_EXCEEDED
    ├── StoreFailure                 UNAVAILABLE: the gateway's store cannot write (disk full...)
    └── InternalError                INTERNAL: a gateway fault, never a client's input

Messages and metadata never carry personal data: they are copied into logs and spans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from essc_gateway.upstream.attempts import PlatformAttempt
from essc_gateway.upstream.outcomes import Outcome

ERROR_DOMAIN = "essc-gateway.v1"


class ErrorReason(StrEnum):
    """Stable catalogue of ErrorInfo reasons. Never rename a member: clients match on them."""

    INVALID_FIELD = "INVALID_FIELD"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    BANK_UNAUTHENTICATED = "BANK_UNAUTHENTICATED"
    AUTH_TOKEN_INVALID = "AUTH_TOKEN_INVALID"
    AUTH_TOKEN_EXPIRED = "AUTH_TOKEN_EXPIRED"
    AUTH_TOKEN_WRONG_SCENARIO = "AUTH_TOKEN_WRONG_SCENARIO"
    FACTOR_REJECTED = "FACTOR_REJECTED"
    HOLDER_LOCKED_OUT = "HOLDER_LOCKED_OUT"
    LEDGER_RECORD_NOT_FOUND = "LEDGER_RECORD_NOT_FOUND"
    CHECKPOINT_NOT_FOUND = "CHECKPOINT_NOT_FOUND"
    FACTOR_CHECKS_IN_PROGRESS = "FACTOR_CHECKS_IN_PROGRESS"
    """Other checks of the holder's factors are in flight and could use up the remaining
    tries: not a lockout, and not the holder's error."""
    VERIFICATION_TOKEN_INVALID = "VERIFICATION_TOKEN_INVALID"
    VERIFICATION_TOKEN_EXPIRED = "VERIFICATION_TOKEN_EXPIRED"
    VERIFICATION_MISMATCH = "VERIFICATION_MISMATCH"
    GUARDIAN_NOT_VERIFIED = "GUARDIAN_NOT_VERIFIED"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
    CARD_HELD_BY_OTHER_BANK = "CARD_HELD_BY_OTHER_BANK"
    CARD_NOT_FOUND = "CARD_NOT_FOUND"
    CARD_SUSPENDED = "CARD_SUSPENDED"
    CARD_TERMINATED = "CARD_TERMINATED"
    CARD_NOT_SUSPENDED = "CARD_NOT_SUSPENDED"
    PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
    PLATFORM_UNAVAILABLE = "PLATFORM_UNAVAILABLE"
    PLATFORM_TIMEOUT = "PLATFORM_TIMEOUT"
    PLATFORM_REJECTED = "PLATFORM_REJECTED"
    PLATFORM_CIRCUIT_OPEN = "PLATFORM_CIRCUIT_OPEN"
    PLATFORM_REFUSED = "PLATFORM_REFUSED"
    PLATFORM_MAINTENANCE = "PLATFORM_MAINTENANCE"
    MAINTENANCE_WINDOW = "MAINTENANCE_WINDOW"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    OPERATOR_UNAUTHENTICATED = "OPERATOR_UNAUTHENTICATED"
    NOT_AN_OPERATOR = "NOT_AN_OPERATOR"
    WINDOW_NOT_FOUND = "WINDOW_NOT_FOUND"
    ISSUE_NOT_FOUND = "ISSUE_NOT_FOUND"
    SMS_THROTTLED = "SMS_THROTTLED"
    SMS_NOT_REQUIRED = "SMS_NOT_REQUIRED"
    CALENDAR_YEAR_UNKNOWN = "CALENDAR_YEAR_UNKNOWN"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    CARD_RECORDS_DISAGREE = "CARD_RECORDS_DISAGREE"
    UNTRUSTED_IDENTITY_HEADER = "UNTRUSTED_IDENTITY_HEADER"
    INTERNAL = "INTERNAL"
    KEY_IN_USE = "KEY_IN_USE"
    KEYSTORE_UNAVAILABLE = "KEYSTORE_UNAVAILABLE"
    KEY_ACTION_NEEDS_SECOND_OPERATOR = "KEY_ACTION_NEEDS_SECOND_OPERATOR"
    ROLE_NOT_PERMITTED = "ROLE_NOT_PERMITTED"
    HOLDER_NOT_FOUND = "HOLDER_NOT_FOUND"
    HOLDER_ISSUANCE_UNSETTLED = "HOLDER_ISSUANCE_UNSETTLED"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field. `field` is the request path, e.g. `applicant.social_security_number`."""

    field: str
    description: str
    # Stable machine-readable code, e.g. BAD_CHECK_DIGIT; carried in the violation's reason.
    code: str = "INVALID"


class Reach(StrEnum):
    """Whether a failed operation reached the platform: decides A16(1)(b) against (d)."""

    REACHED = "true"
    NOT_REACHED = "false"
    UNKNOWN = "unknown"
    """An earlier attempt may have been processed (in doubt)."""


class FailureCause(StrEnum):
    CALLER_DEADLINE = "caller_deadline"
    """The bank's own deadline left no time for the platform: the bank's side."""


_E = TypeVar("_E", bound=StrEnum)


def _member(kind: type[_E], value: str | None) -> _E | None:
    """`value` as a member of `kind`; None if absent or not one of its values."""
    try:
        return None if value is None else kind(value)
    except ValueError:
        return None


@dataclass(slots=True)
class PlatformFacts:
    """What the resilient caller knows of a failed platform operation. The liability
    classification decides on these typed fields; they become ErrorInfo strings (and
    evidence) only through `as_metadata`."""

    operation: str = ""
    outcome: Outcome | None = None
    attempts: int | None = None
    reach: Reach | None = None
    cause: FailureCause | None = None
    circuit_forced: bool | None = None
    """Set when the circuit refused the call: whether an operator held it open."""

    @classmethod
    def from_evidence(cls, evidence: Mapping[str, str]) -> PlatformFacts:
        """The facts a stored record's evidence kept (`as_metadata`'s strings), read back
        where a stored record is judged again (amendments, the audit)."""
        outcome, reach = evidence.get("outcome"), evidence.get("platform_reached")
        cause, attempts = evidence.get("cause"), evidence.get("attempts", "")
        forced = evidence.get("circuit_forced")
        return cls(
            operation=evidence.get("operation", ""),
            outcome=_member(Outcome, outcome),
            attempts=int(attempts) if attempts.isdigit() else None,
            reach=_member(Reach, reach),
            cause=_member(FailureCause, cause),
            circuit_forced=None if forced is None else forced == "true",
        )

    def as_metadata(self) -> dict[str, str]:
        shown: dict[str, str] = {}
        if self.operation:
            shown["operation"] = self.operation
        if self.outcome is not None:
            shown["outcome"] = self.outcome.value
        if self.attempts is not None:
            shown["attempts"] = str(self.attempts)
        if self.reach is not None:
            shown["platform_reached"] = self.reach.value
        if self.cause is not None:
            shown["cause"] = self.cause.value
        if self.circuit_forced is not None:
            shown["circuit_forced"] = str(self.circuit_forced).lower()
        return shown


class GatewayError(Exception):
    """Root of every error the gateway answers with."""

    default_reason = ErrorReason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: ErrorReason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.platform: PlatformFacts | None = None
        """Set by the resilient caller on an error that came of a platform operation (a
        platform's refusal included)."""

    def details(self) -> dict[str, str]:
        """The ErrorInfo metadata the caller gets (and the evidence draws on): the error's
        strings, plus the platform facts as strings."""
        if self.platform is None:
            return self.metadata
        return {**self.metadata, **self.platform.as_metadata()}


class InvalidRequest(GatewayError):
    default_reason = ErrorReason.INVALID_FIELD

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        fields = ", ".join(v.field for v in violations)
        super().__init__(f"invalid fields: {fields}")
        self.violations = tuple(violations)


class MalformedRequest(InvalidRequest):
    """The request body is not valid protobuf for the method's request type."""

    default_reason = ErrorReason.MALFORMED_REQUEST

    def __init__(self) -> None:
        super().__init__(
            [
                FieldViolation(
                    "",
                    "the request body is not a valid message of this method's request type",
                    "MALFORMED_REQUEST",
                )
            ]
        )
        self.message = "malformed request body"


class Unauthenticated(GatewayError):
    default_reason = ErrorReason.BANK_UNAUTHENTICATED


class PermissionDenied(GatewayError):
    default_reason = ErrorReason.AUTH_TOKEN_WRONG_SCENARIO


class NotFound(GatewayError):
    default_reason = ErrorReason.CARD_NOT_FOUND


class AlreadyExists(GatewayError):
    default_reason = ErrorReason.CARD_HELD_BY_OTHER_BANK


class PreconditionFailed(GatewayError):
    default_reason = ErrorReason.IDENTITY_MISMATCH


class Conflict(GatewayError):
    default_reason = ErrorReason.REQUEST_IN_PROGRESS

    def __init__(
        self,
        message: str,
        *,
        reason: ErrorReason | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after


class ResourceExhausted(GatewayError):
    default_reason = ErrorReason.HOLDER_LOCKED_OUT

    def __init__(
        self,
        message: str,
        *,
        retry_after: timedelta,
        reason: ErrorReason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after


class MaintenanceInProgress(GatewayError):
    """An announced maintenance window covers this call: the platform is not called."""

    default_reason = ErrorReason.MAINTENANCE_WINDOW

    def __init__(
        self, message: str, *, retry_after: timedelta, metadata: Mapping[str, str]
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.retry_after = retry_after


class PlatformError(GatewayError):
    """The national platform did not give a usable answer."""

    default_reason = ErrorReason.PLATFORM_REJECTED

    def __init__(
        self,
        message: str,
        *,
        upstream_code: str,
        reason: ErrorReason | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: timedelta | None = None,
        platform: PlatformFacts | None = None,
    ) -> None:
        super().__init__(
            message, reason=reason, metadata={**(metadata or {}), "upstream_code": upstream_code}
        )
        self.upstream_code = upstream_code
        self.retry_after = retry_after
        self.platform = platform
        self.attempts: tuple[PlatformAttempt, ...] = ()
        """Each platform attempt of the failing operation (set by the resilient caller)."""


class PlatformUnavailable(PlatformError):
    default_reason = ErrorReason.PLATFORM_UNAVAILABLE


class PlatformTimeout(PlatformError):
    default_reason = ErrorReason.PLATFORM_TIMEOUT


class StoreFailure(GatewayError):
    """The gateway's own store cannot write: nothing was recorded for this request, and its
    metadata `outcome` says whether the platform may have acted on it (IN_DOUBT)."""

    default_reason = ErrorReason.STORE_UNAVAILABLE

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, metadata=metadata)
        self.retry_after = STORE_RETRY_AFTER


STORE_RETRY_AFTER = timedelta(seconds=1)


class KeystoreUnavailable(GatewayError):
    """The root keystore (HSM) does not answer and this call needs it (a key not in memory);
    nothing was changed."""

    default_reason = ErrorReason.KEYSTORE_UNAVAILABLE


class InternalError(GatewayError):
    default_reason = ErrorReason.INTERNAL
