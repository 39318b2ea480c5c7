"""Free text kept in evidence that can never be erased (a case reference, a recipient's
name): refused when it holds something shaped like personal data, since no erasure could
take it out again (A14)."""

from __future__ import annotations

import re

_SHAPES = re.compile(
    # An ID number (17 digits and a check character), a phone, bank card or account
    # number: 11 digits or more in a row, single spaces or hyphens between groups counted
    # as one number (138 0013 8000, 6222-0212-3456-7890, 110101 19900307 123X).
    r"\d(?:[ -]?\d){16}[ -]?[Xx]|\d(?:[ -]?\d){10,}"
)


def looks_personal(text: str) -> bool:
    """Whether `text` holds an ID-, phone- or card-number-shaped run of digits. It cannot
    see a name: the proto comments and README tell operators to write case numbers only.
    It refuses some harmless numbers too (a 14-digit ticket number): write those with a
    letter or a slash between groups."""
    return _SHAPES.search(text) is not None
