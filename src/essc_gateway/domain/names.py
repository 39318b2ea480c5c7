"""A person's real name as given to the platform (A9)."""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 64


def name_problem(raw: str) -> str | None:
    """Why `raw` cannot be a person's name, or None. Never echoes the name."""
    name = raw.strip()
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    for char in name:
        category = unicodedata.category(char)
        # Letters, spaces and the middle dot of minority names; no digits, controls or symbols.
        if not (category.startswith("L") or char in " ·•.'-"):
            return "may contain letters, spaces and the name separator · only"
    return None


def normalise_name(raw: str) -> str:
    """NFC and trimmed, so that the same name always seals and hashes the same."""
    return unicodedata.normalize("NFC", raw.strip())
