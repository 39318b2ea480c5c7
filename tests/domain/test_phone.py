"""Mobile numbers (A9), stored as E.164."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essc_gateway.domain.phone import InvalidPhoneError, PhoneProblem, parse_mobile

MOBILE_PREFIXES = ["130", "135", "138", "139", "150", "158", "186", "189", "199"]


@given(st.sampled_from(MOBILE_PREFIXES), st.integers(min_value=0, max_value=99_999_999))
def test_chinese_mobiles_are_accepted_in_national_and_e164_form(prefix: str, rest: int) -> None:
    national = f"{prefix}{rest:08d}"
    assert parse_mobile(national) == f"+86{national}"
    assert parse_mobile(f"+86{national}") == f"+86{national}"
    assert parse_mobile(f"+86 {national[:3]} {national[3:7]} {national[7:]}") == f"+86{national}"


@given(st.text(alphabet="０１２３４５６７８９", min_size=11, max_size=11))
def test_full_width_digits_are_refused(value: str) -> None:
    with pytest.raises(InvalidPhoneError) as raised:
        parse_mobile(value)
    assert raised.value.problem is PhoneProblem.MALFORMED


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("12345678901", PhoneProblem.NOT_CHINESE_MOBILE),
        ("+14155552671", PhoneProblem.NOT_CHINESE_MOBILE),
        ("01062345678", PhoneProblem.NOT_CHINESE_MOBILE),  # Beijing landline
        ("1380013800a", PhoneProblem.MALFORMED),
    ],
)
def test_other_numbers_are_refused(value: str, problem: PhoneProblem) -> None:
    with pytest.raises(InvalidPhoneError) as raised:
        parse_mobile(value)
    assert raised.value.problem is problem
    assert value not in str(raised.value)
