"""The holder's query password: initial value (K1) and what a new one may not be (K3)."""

from __future__ import annotations

from enum import StrEnum

from essc_gateway.domain.citizen_id import CitizenId

MIN_LENGTH = 8
MAX_LENGTH = 32
_COMMON = frozenset({"password", "12345678", "88888888", "11111111", "00000000", "123456789"})
_SEQUENCES = ("0123456789012", "9876543210987", "abcdefghijklmnopqrstuvwxyz")


def initial_password(id_number: str) -> str:
    """Last 8 characters of the 18-character ID, a trailing X replaced by 1 (K1)."""
    last8 = id_number[-8:]
    return last8[:-1] + "1" if last8.endswith(("X", "x")) else last8


class PasswordWeakness(StrEnum):
    """Why a new password is refused; codes are stable (used in error details)."""

    LENGTH = "LENGTH"
    INITIAL_PASSWORD = "INITIAL_PASSWORD"
    SAME_AS_CURRENT = "SAME_AS_CURRENT"
    REPEATED_CHARACTER = "REPEATED_CHARACTER"
    SEQUENCE = "SEQUENCE"
    CONTAINS_BIRTH_DATE = "CONTAINS_BIRTH_DATE"
    CONTAINS_ID_NUMBER = "CONTAINS_ID_NUMBER"
    COMMON = "COMMON"
    NOT_PRINTABLE_ASCII = "NOT_PRINTABLE_ASCII"


WEAKNESS_DESCRIPTIONS = {
    PasswordWeakness.LENGTH: f"must be {MIN_LENGTH}-{MAX_LENGTH} characters",
    PasswordWeakness.INITIAL_PASSWORD: "must not be the initial password (K3)",
    PasswordWeakness.SAME_AS_CURRENT: "must differ from the current password",
    PasswordWeakness.REPEATED_CHARACTER: "must not be one repeated character",
    PasswordWeakness.SEQUENCE: "must not be a run of consecutive characters",
    PasswordWeakness.CONTAINS_BIRTH_DATE: "must not contain the holder's birth date",
    PasswordWeakness.CONTAINS_ID_NUMBER: "must not contain 6 or more characters of the ID number",
    PasswordWeakness.COMMON: "is a commonly used password",
    PasswordWeakness.NOT_PRINTABLE_ASCII: "must use printable ASCII characters only",
}


def _is_sequence(candidate: str) -> bool:
    lowered = candidate.lower()
    return any(lowered in sequence for sequence in _SEQUENCES)


def password_weakness(  # noqa: PLR0911 - one rule per return, in order of precedence
    new: str, current: str, holder: CitizenId
) -> PasswordWeakness | None:
    """The first reason `new` is not acceptable for this holder, or None (K3)."""
    if not MIN_LENGTH <= len(new) <= MAX_LENGTH:
        return PasswordWeakness.LENGTH
    if not (new.isascii() and new.isprintable()):
        return PasswordWeakness.NOT_PRINTABLE_ASCII
    if new == initial_password(holder.value):
        return PasswordWeakness.INITIAL_PASSWORD
    if new == current:
        return PasswordWeakness.SAME_AS_CURRENT
    if len(set(new)) == 1:
        return PasswordWeakness.REPEATED_CHARACTER
    if _is_sequence(new):
        return PasswordWeakness.SEQUENCE
    if holder.birth_date.strftime("%Y%m%d") in new:
        return PasswordWeakness.CONTAINS_BIRTH_DATE
    id_value = holder.value
    if any(id_value[i : i + 6] in new for i in range(len(id_value) - 5)):
        return PasswordWeakness.CONTAINS_ID_NUMBER
    if new.lower() in _COMMON:
        return PasswordWeakness.COMMON
    return None
