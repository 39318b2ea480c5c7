"""Test doubles shipped with the package: only the clock and randomness are ever faked."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock whose wall time moves only when told to. Satisfies `essc_gateway.clock.Clock`.

    Monotonic time also moves by `advance`; with `follow_real_time=True` it follows the real
    monotonic clock as well, so that deadlines and timeouts of real network calls still
    hold while expiry, lockouts and windows are driven by the test.
    """

    def __init__(self, start: datetime | None = None, *, follow_real_time: bool = False) -> None:
        self._now = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        self._offset = 1000.0
        self._follow_real_time = follow_real_time
        self._real_origin = time.monotonic()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        if self._follow_real_time:
            return self._offset + (time.monotonic() - self._real_origin)
        return self._offset

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += delta
        self._offset += delta.total_seconds()
