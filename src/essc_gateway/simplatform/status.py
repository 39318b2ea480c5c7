"""The one place where the platform builds its error answers.

Every error the platform sends itself carries `grpc-status-details-bin`: a google.rpc.Status
with an ErrorInfo (domain `essc-platform.v1`, a stable reason) and, when the platform knows
when to come back, a RetryInfo. A caller can thus tell "the platform answered" (details
present) from "the platform was not reached" (no server metadata at all).

Messages and metadata never carry names, ID numbers, phones, passwords or codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Never

import grpc
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "essc-platform.v1"

Context = grpc.aio.ServicerContext[Any, Any]


def rich_status(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    metadata: Mapping[str, str] | None = None,
    retry_after: timedelta | None = None,
) -> grpc.Status:
    """A status with ErrorInfo (and RetryInfo when `retry_after` is given)."""
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=ERROR_DOMAIN, metadata=dict(metadata or {})
    )
    details = [_pack(info)]
    if retry_after is not None:
        delay = Duration()
        delay.FromTimedelta(retry_after)
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(status)  # type: ignore[no-any-return]


async def abort(
    context: Context,
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    metadata: Mapping[str, str] | None = None,
    retry_after: timedelta | None = None,
) -> Never:
    """Ends the call with a rich error answer."""
    await context.abort_with_status(
        rich_status(code, message, reason, metadata=metadata, retry_after=retry_after)
    )


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> AnyPb:
    packed = AnyPb()
    packed.Pack(message)
    return packed
