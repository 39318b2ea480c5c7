"""What each platform attempt of a request did: evidence for its liability record (A16)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PlatformAttempt:
    operation: str
    sent_at: datetime
    duration_ms: float
    code: str
    """The gRPC status name (OK for a good answer)."""
    outcome: str
    """NOT_SENT, IN_DOUBT, REJECTED, OK or RECOVERED."""
    platform_reason: str = ""
    """The platform's own ErrorInfo reason, when it sent one."""
    retry_after_ms: float | None = None
    """The platform's RetryInfo pushback, when it sent one."""


def attempt_to_dict(attempt: PlatformAttempt) -> dict[str, Any]:
    """Plain data for orjson, which writes the time (in UTC) as RFC 3339 itself."""
    sent_at = attempt.sent_at
    return {
        "operation": attempt.operation,
        "sent_at": sent_at if sent_at.tzinfo is UTC else sent_at.astimezone(UTC),
        "duration_ms": attempt.duration_ms,
        "code": attempt.code,
        "outcome": attempt.outcome,
        "platform_reason": attempt.platform_reason,
        "retry_after_ms": attempt.retry_after_ms,
    }


def attempt_from_dict(data: Mapping[str, Any]) -> PlatformAttempt:
    """Raises KeyError, ValueError or TypeError on a damaged value."""
    sent_at = datetime.fromisoformat(str(data["sent_at"]))
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must carry its offset")
    retry_after = data["retry_after_ms"]
    return PlatformAttempt(
        operation=str(data["operation"]),
        sent_at=sent_at,
        duration_ms=float(data["duration_ms"]),
        code=str(data["code"]),
        outcome=str(data["outcome"]),
        platform_reason=str(data["platform_reason"]),
        retry_after_ms=None if retry_after is None else float(retry_after),
    )
