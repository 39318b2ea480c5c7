"""What a failed platform attempt means. Three outcomes are kept apart, because only one of
them allows a blind re-send of a write:

- NOT_SENT: the platform was never reached (connection refused; or our own breaker, budget
  or maintenance window stopped the call). Safe to retry anything.
- IN_DOUBT: the request may have been processed (deadline passed, connection reset after
  sending). A write must ask the platform for its outcome before re-sending.
- REJECTED: the platform answered with an error status. UNAVAILABLE / RESOURCE_EXHAUSTED
  answers are given before processing (the platform's contract) and may be retried.

The platform attaches google.rpc details to every error it sends itself; a failure with no
server metadata at all did not come from the platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"
# grpc-core's wording when no connection could be made: nothing was sent.
_NOT_CONNECTED_MARKERS = ("failed to connect", "connection refused", "dns resolution failed")
_TRANSIENT_ANSWERS = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
_IN_DOUBT_CODES = frozenset(
    {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}
)
MAINTENANCE_REASON = "MAINTENANCE"


class Outcome(StrEnum):
    NOT_SENT = "NOT_SENT"
    IN_DOUBT = "IN_DOUBT"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """A classified failed attempt."""

    outcome: Outcome
    code: grpc.StatusCode
    reached: bool
    """The platform itself answered (or at least held the request until the deadline)."""
    reason: str = ""
    """The platform's ErrorInfo reason, when it sent one."""
    retry_after: timedelta | None = None
    """The platform's RetryInfo pushback, when it sent one."""
    sent_at: datetime | None = None
    """When the failed attempt was sent: an outage starts then, not when a hang ended."""

    @property
    def transient(self) -> bool:
        """Worth another attempt if the operation allows it."""
        if self.reason == MAINTENANCE_REASON:
            return False  # announced: the window outlasts any request's deadline
        if self.outcome is Outcome.REJECTED:
            return self.code in _TRANSIENT_ANSWERS
        return True


def _details(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def classify(error: grpc.aio.AioRpcError) -> AttemptFailure:
    code = error.code() or grpc.StatusCode.UNKNOWN
    status = _details(error)
    if status is not None:
        reason, retry_after = "", None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after = retry.retry_delay.ToTimedelta()
        return AttemptFailure(Outcome.REJECTED, code, True, reason, retry_after)
    text = (error.details() or "").lower()
    if code == grpc.StatusCode.UNAVAILABLE and any(m in text for m in _NOT_CONNECTED_MARKERS):
        return AttemptFailure(Outcome.NOT_SENT, code, reached=False)
    if code in _IN_DOUBT_CODES:
        # A reset connection reached nobody we can name; a deadline means the platform held it.
        return AttemptFailure(Outcome.IN_DOUBT, code, reached=code != grpc.StatusCode.UNAVAILABLE)
    return AttemptFailure(Outcome.REJECTED, code, reached=True)
