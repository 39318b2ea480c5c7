"""The 18-character citizen ID number, which is also the social security number [K].

GB 11643-1999: 6 digits of area, 8 of birth date (YYYYMMDD), 3 of sequence (the last odd for
male, even for female), and an ISO 7064 MOD 11-2 check character (0-9 or X).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
# Explicit ASCII classes: str.isdigit() and \d also accept Arabic-Indic or full-width digits.
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_ASCII_DIGITS = frozenset("0123456789")
# First two digits: province-level area codes (GB/T 2260), 71/81/82/83 for Taiwan, HK, Macau.
_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_EARLIEST_BIRTH = date(1850, 1, 1)


class CitizenIdProblem(StrEnum):
    """Why a string is not a valid citizen ID; codes are stable (used in error details)."""

    WRONG_LENGTH = "WRONG_LENGTH"
    NOT_ASCII_DIGITS = "NOT_ASCII_DIGITS"
    UNKNOWN_AREA = "UNKNOWN_AREA"
    IMPOSSIBLE_BIRTH_DATE = "IMPOSSIBLE_BIRTH_DATE"
    BIRTH_DATE_IN_FUTURE = "BIRTH_DATE_IN_FUTURE"
    BAD_CHECK_DIGIT = "BAD_CHECK_DIGIT"


_DESCRIPTIONS = {
    CitizenIdProblem.WRONG_LENGTH: "must be 18 characters",
    CitizenIdProblem.NOT_ASCII_DIGITS: "must be 17 ASCII digits followed by a digit or X",
    CitizenIdProblem.UNKNOWN_AREA: "area code does not name a known province",
    CitizenIdProblem.IMPOSSIBLE_BIRTH_DATE: "digits 7-14 are not a possible birth date",
    CitizenIdProblem.BIRTH_DATE_IN_FUTURE: "birth date is in the future",
    CitizenIdProblem.BAD_CHECK_DIGIT: "check character does not match (GB 11643-1999)",
}


class InvalidCitizenIdError(ValueError):
    """Raised for an invalid ID; the message never contains the ID itself."""

    def __init__(self, problem: CitizenIdProblem) -> None:
        super().__init__(_DESCRIPTIONS[problem])
        self.problem = problem
        self.description = _DESCRIPTIONS[problem]


class Sex(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"


@dataclass(frozen=True, slots=True)
class CitizenId:
    """A validated citizen ID. `repr` is masked so that it never lands in a log in clear."""

    value: str
    birth_date: date
    sex: Sex

    def __repr__(self) -> str:
        return f"CitizenId({mask_id(self.value)})"

    __str__ = __repr__

    def age_on(self, day: date) -> int:
        """Completed years of age on `day`."""
        had_birthday = (day.month, day.day) >= (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - (0 if had_birthday else 1)


def check_character(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def normalise_id_text(raw: str) -> str:
    """Trimmed, with a trailing lower-case x made X: one spelling per ID number."""
    value = raw.strip()
    return value[:-1] + "X" if value.endswith("x") else value


def parse_citizen_id(raw: str, today: date) -> CitizenId:
    """Validates and normalises (trailing lower-case x to X) a citizen ID number.

    Raises:
        InvalidCitizenIdError: with the first problem found.
    """
    candidate = normalise_id_text(raw)
    if len(candidate) != 18:
        raise InvalidCitizenIdError(CitizenIdProblem.WRONG_LENGTH)
    if not _SHAPE.fullmatch(candidate) or not _ASCII_DIGITS.issuperset(candidate[:17]):
        raise InvalidCitizenIdError(CitizenIdProblem.NOT_ASCII_DIGITS)
    if int(candidate[:2]) not in _PROVINCES:
        raise InvalidCitizenIdError(CitizenIdProblem.UNKNOWN_AREA)
    try:
        birth = date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        raise InvalidCitizenIdError(CitizenIdProblem.IMPOSSIBLE_BIRTH_DATE) from None
    if birth < _EARLIEST_BIRTH:
        raise InvalidCitizenIdError(CitizenIdProblem.IMPOSSIBLE_BIRTH_DATE)
    if birth > today:
        raise InvalidCitizenIdError(CitizenIdProblem.BIRTH_DATE_IN_FUTURE)
    if check_character(candidate[:17]) != candidate[17]:
        raise InvalidCitizenIdError(CitizenIdProblem.BAD_CHECK_DIGIT)
    sex = Sex.MALE if int(candidate[16]) % 2 == 1 else Sex.FEMALE
    return CitizenId(value=candidate, birth_date=birth, sex=sex)


def mask_id(value: str) -> str:
    """Shows only the first and last character: enough to tell records apart by eye."""
    if len(value) < 4:
        return "*" * len(value)
    return f"{value[0]}{'*' * (len(value) - 2)}{value[-1]}"
