"""Working days and the complaint deadline (A15), on literal calendars."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essc_gateway.liability.workdays import add_working_days, complaint_due, is_working_day

FRIDAY = date(2026, 11, 6)


def test_a_complaint_accepted_on_a_friday_is_due_three_weeks_later() -> None:
    # Mon 9 .. Fri 13 are days 1-5, 16-20 are 6-10, 23-27 are 11-15.
    assert complaint_due(FRIDAY) == date(2026, 11, 27)


def test_the_acceptance_day_is_day_zero() -> None:
    assert add_working_days(FRIDAY, 0) == FRIDAY
    assert add_working_days(FRIDAY, 1) == date(2026, 11, 9)  # the Monday after
    assert add_working_days(date(2026, 11, 7), 1) == date(2026, 11, 9)  # from a Saturday


def test_a_holiday_inside_the_span_pushes_the_due_date_one_working_day() -> None:
    holiday = frozenset({date(2026, 11, 11)})  # a Wednesday
    assert complaint_due(FRIDAY, holidays=holiday) == date(2026, 11, 30)  # the next Monday


def test_a_holiday_on_the_acceptance_day_changes_nothing() -> None:
    assert complaint_due(FRIDAY, holidays=frozenset({FRIDAY})) == date(2026, 11, 27)


def test_a_make_up_saturday_counts_as_a_working_day() -> None:
    make_up = frozenset({date(2026, 11, 14)})  # a Saturday
    assert complaint_due(FRIDAY, extra_workdays=make_up) == date(2026, 11, 26)


def test_a_golden_week_with_a_make_up_saturday() -> None:
    # A literal calendar in the shape of National Day: Thu 1 - Wed 7 October off (weekdays
    # among them are holidays), Saturday 10 October worked.
    holidays = frozenset(date(2026, 10, d) for d in (1, 2, 5, 6, 7))
    make_up = frozenset({date(2026, 10, 10)})
    # Oct 8, 9, 10 are days 1-3; 12-16 are 4-8; 19-23 are 9-13; 26 and 27 are 14 and 15.
    due = complaint_due(date(2026, 9, 30), holidays=holidays, extra_workdays=make_up)
    assert due == date(2026, 10, 27)


def test_is_working_day() -> None:
    assert is_working_day(FRIDAY)
    assert not is_working_day(date(2026, 11, 7))
    assert not is_working_day(FRIDAY, holidays=frozenset({FRIDAY}))
    assert is_working_day(date(2026, 11, 7), extra_workdays=frozenset({date(2026, 11, 7)}))


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_days(FRIDAY, -1)


def test_a_day_both_off_and_worked_is_refused() -> None:
    both = frozenset({date(2026, 11, 9)})
    with pytest.raises(ValueError, match="2026-11-09"):
        add_working_days(FRIDAY, 3, holidays=both, extra_workdays=both)


@given(
    st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    st.integers(min_value=1, max_value=60),
    st.frozensets(st.dates(min_value=date(2020, 1, 1), max_value=date(2036, 6, 30)), max_size=20),
)
def test_the_result_is_the_days_th_working_day_after_start(
    start: date, days: int, holidays: frozenset[date]
) -> None:
    due = add_working_days(start, days, holidays)
    assert is_working_day(due, holidays)
    span = (start + timedelta(days=n) for n in range(1, (due - start).days + 1))
    assert sum(is_working_day(day, holidays) for day in span) == days
