"""The one mapping from the gateway's error tree to gRPC status codes and google.rpc details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from essc_gateway.errors import (
    ERROR_DOMAIN,
    AlreadyExists,
    Conflict,
    GatewayError,
    InternalError,
    InvalidRequest,
    KeystoreUnavailable,
    MaintenanceInProgress,
    NotFound,
    PermissionDenied,
    PlatformError,
    PlatformTimeout,
    PlatformUnavailable,
    PreconditionFailed,
    ResourceExhausted,
    StoreFailure,
    Unauthenticated,
)

# Most specific first: subclasses before their bases.
_CODES: tuple[tuple[type[GatewayError], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (PreconditionFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (Conflict, grpc.StatusCode.ABORTED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (MaintenanceInProgress, grpc.StatusCode.UNAVAILABLE),
    (PlatformTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (PlatformUnavailable, grpc.StatusCode.UNAVAILABLE),
    # The platform failed in a way it should not: a platform-side fault, retry later.
    (PlatformError, grpc.StatusCode.UNAVAILABLE),
    (StoreFailure, grpc.StatusCode.UNAVAILABLE),
    (KeystoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (InternalError, grpc.StatusCode.INTERNAL),
)


def status_code_for(error: GatewayError) -> grpc.StatusCode:
    for error_type, code in _CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromMilliseconds(max(int(seconds * 1000), 0))
    return duration


def to_rpc_status(error: GatewayError) -> grpc.Status:
    """A gRPC status with ErrorInfo, plus BadRequest or RetryInfo where they apply."""
    code = status_code_for(error)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason.value, domain=ERROR_DOMAIN, metadata=error.details()
            )
        )
    ]
    if isinstance(error, InvalidRequest):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description, reason=v.code
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        details.append(
            _pack(error_details_pb2.RetryInfo(retry_delay=_duration(retry_after.total_seconds())))
        )
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )
    converted: grpc.Status = rpc_status.to_status(status)
    if retry_after is not None and code == grpc.StatusCode.UNAVAILABLE:  # see the trailer
        # gRPC clients' own retry policy reads this trailer, not RetryInfo: without it they
        # resend at once into a maintenance window or an open circuit. A positive value would
        # make them wait, often past their deadline; -1 says "do not retry", and RetryInfo
        # tells the bank when to come back.
        pushback = "-1"
        return _Status(
            code=converted.code,
            details=converted.details,
            trailing_metadata=(*converted.trailing_metadata, ("grpc-retry-pushback-ms", pushback)),
        )
    return converted


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]
