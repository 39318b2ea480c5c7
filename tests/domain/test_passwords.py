"""Initial password (K1) and what a new one may not be (K3)."""

from __future__ import annotations

from datetime import date

import pytest

from essc_gateway.domain.citizen_id import parse_citizen_id
from essc_gateway.domain.passwords import PasswordWeakness, initial_password, password_weakness

HOLDER = parse_citizen_id("11010519491231002X", date(2026, 11, 2))


def test_k1_initial_password_is_the_last_8_with_x_as_1() -> None:
    assert initial_password("11010519491231002X") == "12310021"
    assert initial_password("440524188001010014") == "01010014"


@pytest.mark.parametrize(
    ("new", "weakness"),
    [
        ("12310021", PasswordWeakness.INITIAL_PASSWORD),
        ("Current-Pass-1", PasswordWeakness.SAME_AS_CURRENT),
        ("zzzzzzzz", PasswordWeakness.REPEATED_CHARACTER),
        ("87654321", PasswordWeakness.SEQUENCE),
        ("abcdefgh", PasswordWeakness.SEQUENCE),
        ("xx19491231", PasswordWeakness.CONTAINS_BIRTH_DATE),
        ("a110105b9", PasswordWeakness.CONTAINS_ID_NUMBER),
        ("password", PasswordWeakness.COMMON),
        ("短密码很长很长很长", PasswordWeakness.NOT_PRINTABLE_ASCII),
        ("seven77", PasswordWeakness.LENGTH),
    ],
)
def test_k3_weak_passwords_are_named(new: str, weakness: PasswordWeakness) -> None:
    assert password_weakness(new, "Current-Pass-1", HOLDER) is weakness


def test_k3_a_strong_password_passes() -> None:
    assert password_weakness("Tr1cky-Harbour!", "12310021", HOLDER) is None
