"""A person's real name as given to the platform (A9)."""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 64
NAME_SEPARATOR = "·"
"""The separator of minority names in the national register (U+00B7)."""

# Other dots people type between the parts of a minority name, from other keyboards and
# fonts (katakana middle dot and its half-width form, hyphenation point, full-width full
# stop, bullet and dot operators, bullet): each means the register's separator.
_SEPARATOR_VARIANTS = str.maketrans(
    dict.fromkeys("\u30fb\uff65\u2027\uff0e\u2219\u22c5\u2022", NAME_SEPARATOR)
)


def normalise_name(raw: str) -> str:
    """Trimmed, NFC (a name typed decomposed is the same name) and with the register's
    separator, so that the same name always validates, seals and hashes the same."""
    return unicodedata.normalize("NFC", raw.strip()).translate(_SEPARATOR_VARIANTS)


def name_problem(name: str) -> str | None:
    """Why a normalised `name` cannot be a person's name, or None. Never echoes the name."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    for index, char in enumerate(name):
        category = unicodedata.category(char)
        # Letters (with the marks some scripts combine with them), spaces and the separator;
        # no digits, controls or symbols.
        mark_after_letter = category.startswith("M") and index > 0
        if not (category.startswith("L") or mark_after_letter or char in " ·.'-"):
            return "may contain letters, spaces and the name separator · only"
    return None
