"""The caller's deadline, carried to every platform call of the request it belongs to."""

from __future__ import annotations

from contextvars import ContextVar

# Monotonic time (Clock.monotonic) by which the current request must be answered.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)
