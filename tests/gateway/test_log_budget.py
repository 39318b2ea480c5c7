"""The access-log budget for unaccountable traffic (issue 10, defect 1)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from essc_gateway.testing import FakeClock
from essc_gateway.transport.log_budget import LogBudget


def test_lines_beyond_the_budget_are_counted_and_summarised_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    budget = LogBudget(clock, logging.getLogger("test.budget"), lines_per_second=3)

    allowed = [budget.allow() for _ in range(10)]
    assert allowed == [True] * 3 + [False] * 7
    assert not caplog.records

    clock.advance(timedelta(seconds=1))
    assert budget.allow()
    assert [r.getMessage() for r in caplog.records] == [
        "7 access-log lines of unidentified callers or undecodable bodies suppressed"
    ]
