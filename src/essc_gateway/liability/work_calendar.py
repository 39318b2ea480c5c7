"""China's official working-day calendar for complaint deadlines (A15): public holidays and the
weekend make-up working days (调休) that the State Council publishes year by year.

The years come from `chinesecalendar` (a maintained package that needs a new release each
year), and an operator may supply years it does not cover yet in a JSON file:

    {"2027": {"holidays": ["2027-01-01", ...], "workdays": ["2027-02-07", ...]}}

A supplied year replaces the package's. A deadline that would need a year known to neither is
refused (`CalendarYearUnknown`) rather than guessed with weekends alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import chinese_calendar

from essc_gateway.errors import ErrorReason, PreconditionFailed
from essc_gateway.liability.workdays import COMPLAINT_WORKING_DAYS, add_working_days


class CalendarYearUnknown(PreconditionFailed):
    """The official calendar of a year that a deadline needs is not known."""

    default_reason = ErrorReason.CALENDAR_YEAR_UNKNOWN


class CalendarFileError(ValueError):
    """An operator-supplied calendar file is unreadable or malformed."""


@dataclass(frozen=True)
class WorkCalendar:
    """Holidays and make-up working days of the years in `years`."""

    holidays: frozenset[date]
    make_up_workdays: frozenset[date]
    years: frozenset[int]

    @classmethod
    def official(cls, supplement: Path | None = None) -> WorkCalendar:
        """The package's years, with those of `supplement` (a JSON file) replacing or adding.

        Raises:
            CalendarFileError: `supplement` cannot be read or is malformed.
        """
        holidays = set(chinese_calendar.holidays)
        workdays = set(chinese_calendar.workdays)
        years = {d.year for d in holidays}
        if supplement is not None:
            for year, (off, on) in _read_supplement(supplement).items():
                holidays = {d for d in holidays if d.year != year} | off
                workdays = {d for d in workdays if d.year != year} | on
                years.add(year)
        return cls(frozenset(holidays), frozenset(workdays), frozenset(years))

    def complaint_due(self, accepted_on: date) -> date:
        """The 15th working day after acceptance (A15), the acceptance day being day 0.

        Raises:
            CalendarYearUnknown: a year between acceptance and the deadline is not known.
        """
        due = add_working_days(
            accepted_on, COMPLAINT_WORKING_DAYS, self.holidays, self.make_up_workdays
        )
        unknown = sorted(set(range(accepted_on.year, due.year + 1)) - self.years)
        if unknown:
            raise CalendarYearUnknown(
                f"the official working-day calendar of {unknown[0]} is not known: "
                "supply it (ESSC_WORK_CALENDAR) or update chinesecalendar"
            )
        return due


def _read_supplement(path: Path) -> dict[int, tuple[set[date], set[date]]]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CalendarFileError(f"{path}: {type(error).__name__}: {error}") from None
    if not isinstance(raw, dict):
        raise CalendarFileError(f"{path}: expected an object of years")
    years: dict[int, tuple[set[date], set[date]]] = {}
    for key, entry in raw.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) == 4):
            raise CalendarFileError(f"{path}: {key!r} is not a year")
        if not isinstance(entry, dict) or set(entry) - {"holidays", "workdays"}:
            raise CalendarFileError(f"{path}: {key}: expected 'holidays' and 'workdays' only")
        year = int(key)
        off = _dates(path, f"{key}.holidays", entry.get("holidays", []), year)
        on = _dates(path, f"{key}.workdays", entry.get("workdays", []), year)
        if off & on:
            raise CalendarFileError(f"{path}: {key}: a day is both a holiday and a workday")
        years[year] = (off, on)
    return years


def _dates(path: Path, where: str, values: Iterable[object], year: int) -> set[date]:
    if not isinstance(values, list):
        raise CalendarFileError(f"{path}: {where}: expected a list of YYYY-MM-DD")
    days = set()
    for value in values:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise CalendarFileError(f"{path}: {where}: {value!r} is not YYYY-MM-DD") from None
        if day.year != year:
            raise CalendarFileError(f"{path}: {where}: {value} is not in {year}")
        days.add(day)
    return days
