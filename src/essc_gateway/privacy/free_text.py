"""Free text kept in evidence that can never be erased (a case reference, a recipient's
name): refused when it holds something shaped like personal data, since no erasure could
take it out again (A14)."""

from __future__ import annotations

import re

_SHAPES = re.compile(
    # An ID number (17 digits and a check character), a phone, bank card or account
    # number: any run of 11 digits or more.
    r"\d{17}[\dXx]|\d{11,}"
    # A mainland mobile number written in groups: 138 0013 8000, 138-0013-8000.
    r"|(?<!\d)1[3-9]\d[\s-]\d{4}[\s-]\d{4}(?!\d)"
)


def looks_personal(text: str) -> bool:
    """Whether `text` holds an ID-, phone- or card-number-shaped run of digits."""
    return _SHAPES.search(text) is not None
