"""A budget of access-log lines for traffic that nobody answers for: callers that could not be
identified and bodies that could not be decoded. Beyond the budget, lines are counted, and
the count is logged once per second, so that no caller can fill the disk with bad requests
(a fuzz run of 100 000 bad bodies once left a 36 MB log)."""

from __future__ import annotations

import logging

from essc_gateway.clock import Clock

DEFAULT_LINES_PER_SECOND = 20


class LogBudget:
    """At most `lines_per_second` lines a second; the rest summarised in one line."""

    def __init__(
        self, clock: Clock, log: logging.Logger, lines_per_second: int = DEFAULT_LINES_PER_SECOND
    ) -> None:
        self._clock = clock
        self._log = log
        self._limit = lines_per_second
        self._second = -1
        self._used = 0
        self._suppressed = 0

    def allow(self) -> bool:
        """Whether one more line may be written now."""
        second = int(self._clock.monotonic())
        if second != self._second:
            self._summarise()
            self._second, self._used = second, 0
        if self._used < self._limit:
            self._used += 1
            return True
        self._suppressed += 1
        return False

    def _summarise(self) -> None:
        if self._suppressed:
            self._log.warning(
                "%d access-log lines of unidentified callers or undecodable bodies suppressed",
                self._suppressed,
            )
            self._suppressed = 0
