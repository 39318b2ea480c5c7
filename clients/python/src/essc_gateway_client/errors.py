"""Errors a client call raises, decoded once from the gateway's rich status.

    GatewayCallError             code, reason, message, metadata, field_violations, retry_after
    ├── InvalidArgument          INVALID_ARGUMENT: field_violations {field: reason code}
    ├── Unauthenticated          UNAUTHENTICATED: bank credentials, auth token, holder factors
    ├── PermissionDenied         PERMISSION_DENIED
    ├── NotFound                 NOT_FOUND
    ├── AlreadyExists            ALREADY_EXISTS
    ├── FailedPrecondition       FAILED_PRECONDITION
    ├── Aborted                  ABORTED: a request with the same key is in progress
    ├── ResourceExhausted        RESOURCE_EXHAUSTED: lockout, rate limit, overload; retry_after
    ├── Unavailable              UNAVAILABLE: platform down, circuit open, maintenance window
    ├── DeadlineExceeded         DEADLINE_EXCEEDED: reason "" when the client's deadline passed
    └── Internal                 INTERNAL
    Any other status code (CANCELLED, UNKNOWN, UNIMPLEMENTED...) raises GatewayCallError itself.

`reason` is the `google.rpc.ErrorInfo` reason (a member of
`essc_gateway.errors.ErrorReason`, compared as a string so that reasons added later still
decode) and `metadata` its metadata. A status without details (the client's own deadline,
a connection failure, a proxy) has reason "" and empty metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from essc.gateway.v1 import errors_pb2

ERROR_DOMAIN = "essc-gateway.v1"
"""The domain of the gateway's own ErrorInfo; its reasons are errors.proto's ErrorReason."""
_REASON_PREFIX = "ERROR_REASON_"

DETAILS_KEY = "grpc-status-details-bin"


class GatewayCallError(Exception):
    """A gateway call that failed, with its status and `google.rpc` details decoded.

    Attributes:
        code: the gRPC status code.
        message: the status message (never personal data).
        reason: ErrorInfo reason, e.g. `MAINTENANCE_WINDOW`; "" when there were no details.
        domain: ErrorInfo domain, `essc-gateway.v1` for the gateway's own answers.
        metadata: ErrorInfo metadata, e.g. `outcome`, `attempts`, `window_id`.
        field_violations: BadRequest violations, field path -> code (`BAD_CHECK_DIGIT`).
        retry_after: RetryInfo delay: when trying again can help (lockout or window end).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Mapping[str, str] | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: dict[str, str] = dict(field_violations or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"

    @property
    def is_maintenance(self) -> bool:
        """A maintenance window covers the call (A16(1)(a)); `retry_after` is its end."""
        return self.reason_value == errors_pb2.ERROR_REASON_MAINTENANCE_WINDOW

    @property
    def reason_value(self) -> errors_pb2.ErrorReason.ValueType:
        """The reason as errors.proto's enum; ERROR_REASON_UNSPECIFIED for no reason, another
        domain's, or one newer than this client."""
        if self.domain != ERROR_DOMAIN or not self.reason:
            return errors_pb2.ERROR_REASON_UNSPECIFIED
        try:
            return errors_pb2.ErrorReason.Value(_REASON_PREFIX + self.reason)
        except ValueError:
            return errors_pb2.ERROR_REASON_UNSPECIFIED

    @property
    def outcome(self) -> str | None:
        """What became of the platform request: NOT_SENT, IN_DOUBT or REJECTED, if known."""
        return self.metadata.get("outcome")

    @property
    def is_in_doubt(self) -> bool:
        """The request may have taken effect: the gateway said IN_DOUBT, or the client's own
        deadline passed before an answer. Repeat a keyed write with the same key."""
        return self.outcome == "IN_DOUBT" or (
            self.code == grpc.StatusCode.DEADLINE_EXCEEDED and not self.reason
        )


class InvalidArgument(GatewayCallError):
    """Bad input: one entry in `field_violations` per bad field."""


class Unauthenticated(GatewayCallError):
    """Bank credentials, auth token or holder factors were not accepted."""


class PermissionDenied(GatewayCallError):
    """Authenticated, but not allowed (e.g. an auth token for another scenario)."""


class NotFound(GatewayCallError):
    """No such card, person, issuance or window."""


class AlreadyExists(GatewayCallError):
    """The person holds an e-SSC through another bank (A3)."""


class FailedPrecondition(GatewayCallError):
    """The request does not fit the current state (card suspended, identity mismatch...)."""


class Aborted(GatewayCallError):
    """A request with the same idempotency key is in progress: repeat it later."""


class ResourceExhausted(GatewayCallError):
    """Holder lockout, SMS throttle, bank rate limit or gateway overload; see retry_after."""


class Unavailable(GatewayCallError):
    """The platform is down or its circuit open, or a maintenance window covers the call."""


class DeadlineExceeded(GatewayCallError):
    """The platform did not answer in time (reason PLATFORM_TIMEOUT), or the client's own
    deadline passed (reason "", no details: the gateway's answer never came)."""

    @property
    def client_side(self) -> bool:
        """The client's deadline passed: no answer from the gateway at all."""
        return not self.reason


class Internal(GatewayCallError):
    """A fault inside the gateway, never the caller's input."""


_BY_CODE: Mapping[grpc.StatusCode, type[GatewayCallError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: Internal,
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> GatewayCallError:
    """The typed error for a failed call, decoded from its `grpc-status-details-bin` trailer.

    Parsed by hand rather than with `grpc_status.rpc_status`, which raises when the status
    proto and the call disagree: a decoding client must never fail on a malformed answer.
    """
    code = error.code()
    details = _status_details(error.trailing_metadata())
    reason, domain, metadata = "", "", {}
    violations: dict[str, str] = {}
    retry_after: timedelta | None = None
    for detail in details.details if details is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            # The gateway's own ErrorInfo wins over one relayed from elsewhere.
            if not reason or info.domain == ERROR_DOMAIN:
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.update({v.field: v.reason for v in bad.field_violations})
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta()
    error_type = _BY_CODE.get(code, GatewayCallError)
    return error_type(
        code,
        error.details() or "",
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=violations,
        retry_after=retry_after,
    )


def _status_details(trailers: grpc.aio.Metadata | None) -> status_pb2.Status | None:
    for key, value in trailers or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None
