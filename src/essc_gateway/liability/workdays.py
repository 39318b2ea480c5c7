"""Working-day arithmetic for complaint deadlines (A15).

A working day is Monday to Friday, minus the public holidays the caller gives, plus the
weekend "make-up" days (调休) on which China works to bridge a holiday. The calendar is an
argument, not data kept here: the State Council publishes it year by year.
"""

from __future__ import annotations

from datetime import date, timedelta

COMPLAINT_WORKING_DAYS = 15
"""A15: a complaint is checked and handled within 15 working days of being accepted."""


def is_working_day(
    day: date,
    holidays: frozenset[date] = frozenset(),
    extra_workdays: frozenset[date] = frozenset(),
) -> bool:
    """Whether `day` is a working day: a make-up day, or a weekday that is not a holiday."""
    if day in extra_workdays:
        return True
    return day.weekday() < 5 and day not in holidays


def add_working_days(
    start: date,
    days: int,
    holidays: frozenset[date] = frozenset(),
    extra_workdays: frozenset[date] = frozenset(),
) -> date:
    """The date on which the `days`-th working day after `start` falls.

    `start` itself is day 0 and never counts, whether or not it is a working day; counting
    begins the next calendar day. Each working day (see `is_working_day`) counts one; weekends,
    holidays and other days off count nothing. `days=0` returns `start`.

    Args:
        start: The day counting starts from (day 0).
        days: How many working days to add; must not be negative.
        holidays: Weekdays off (public holidays).
        extra_workdays: Weekend days worked instead (make-up days).

    Raises:
        ValueError: `days` is negative, or a date is both a holiday and a make-up day.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    both = holidays & extra_workdays
    if both:
        listed = ", ".join(d.isoformat() for d in sorted(both))
        raise ValueError(f"dates both holiday and make-up working day: {listed}")
    day = start
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day, holidays, extra_workdays):
            remaining -= 1
    return day


def complaint_due(
    accepted_on: date,
    holidays: frozenset[date] = frozenset(),
    extra_workdays: frozenset[date] = frozenset(),
) -> date:
    """The last day on which a complaint accepted on `accepted_on` must be handled (A15).

    That is the 15th working day after acceptance, the acceptance day being day 0: a complaint
    accepted on Friday 2026-11-06 is due on Friday 2026-11-27 (a normal calendar).
    """
    return add_working_days(accepted_on, COMPLAINT_WORKING_DAYS, holidays, extra_workdays)
