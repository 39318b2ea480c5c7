"""The citizen ID / social security number [K], GB 11643-1999."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from essc_gateway.domain.citizen_id import (
    CitizenIdProblem,
    InvalidCitizenIdError,
    Sex,
    check_character,
    parse_citizen_id,
)

TODAY = date(2026, 11, 2)
# Area codes python-stdnum knows, so that it can serve as an independent oracle.
AREAS = ["110101", "110105", "310101", "310104"]

births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    area = draw(st.sampled_from(AREAS))
    born = draw(births)
    sequence = draw(st.integers(min_value=0, max_value=999))
    first17 = f"{area}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def test_known_valid_numbers() -> None:
    assert parse_citizen_id("11010519491231002X", TODAY).birth_date == date(1949, 12, 31)
    assert parse_citizen_id("440524188001010014", TODAY).sex is Sex.MALE


@given(valid_ids())
def test_every_well_formed_id_is_accepted_and_agrees_with_stdnum(value: str) -> None:
    parsed = parse_citizen_id(value, TODAY)
    assert parsed.value == value
    assert ric.is_valid(value)
    assert parsed.birth_date == ric.get_birth_date(value)


@given(valid_ids(), st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_changing_one_digit_is_caught(value: str, position: int, delta: int) -> None:
    digit = (int(value[position]) + delta) % 10
    changed = value[:position] + str(digit) + value[position + 1 :]
    with pytest.raises(InvalidCitizenIdError):
        parse_citizen_id(changed, TODAY)


@given(valid_ids(), st.sampled_from(["０", "٠", "०", "፩"]), st.integers(min_value=0, max_value=16))
def test_non_ascii_digits_are_refused(value: str, foreign: str, position: int) -> None:
    # A digit from another script that str.isdigit() would accept.
    changed = value[:position] + foreign + value[position + 1 :]
    with pytest.raises(InvalidCitizenIdError) as raised:
        parse_citizen_id(changed, TODAY)
    assert raised.value.problem is CitizenIdProblem.NOT_ASCII_DIGITS


def test_lower_case_x_is_normalised() -> None:
    assert parse_citizen_id("11010519491231002x", TODAY).value == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("110105194902300029", CitizenIdProblem.IMPOSSIBLE_BIRTH_DATE),
        ("991234199001011234", CitizenIdProblem.UNKNOWN_AREA),
        ("11010519491231002", CitizenIdProblem.WRONG_LENGTH),
    ],
)
def test_structural_problems_are_named(value: str, problem: CitizenIdProblem) -> None:
    with pytest.raises(InvalidCitizenIdError) as raised:
        parse_citizen_id(value, TODAY)
    assert raised.value.problem is problem


def test_a_birth_date_in_the_future_is_refused() -> None:
    tomorrow = TODAY + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}001"
    with pytest.raises(InvalidCitizenIdError) as raised:
        parse_citizen_id(first17 + check_character(first17), TODAY)
    assert raised.value.problem is CitizenIdProblem.BIRTH_DATE_IN_FUTURE


@given(valid_ids())
def test_error_messages_and_repr_never_contain_the_number(value: str) -> None:
    parsed = parse_citizen_id(value, TODAY)
    assert value not in repr(parsed)
    assert value not in str(parsed)
    broken = value[:17] + ("0" if value[17] != "0" else "1")
    with pytest.raises(InvalidCitizenIdError) as raised:
        parse_citizen_id(broken, TODAY)
    assert broken not in str(raised.value)


def test_age_counts_completed_years() -> None:
    first17 = "110105201211020011"[:17]
    child = parse_citizen_id(first17 + check_character(first17), TODAY)
    assert child.age_on(date(2026, 11, 1)) == 13
    assert child.age_on(date(2026, 11, 2)) == 14
