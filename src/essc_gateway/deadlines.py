"""The caller's deadline, carried to every platform call of the request it belongs to."""

from __future__ import annotations

from contextvars import ContextVar

# Monotonic time (Clock.monotonic) by which the current request must be answered.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def call_timeout(default: float, now: float, margin: float = 0.005) -> float:
    """Timeout for one upstream call: never past the caller's remaining deadline."""
    deadline = request_deadline.get()
    if deadline is None:
        return default
    return min(default, deadline - now - margin)
