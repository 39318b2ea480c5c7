"""Names are normalised before they are validated (issue 10, defect 8)."""

from __future__ import annotations

import unicodedata

import pytest

from essc_gateway.domain.names import name_problem, normalise_name


def test_a_decomposed_name_is_the_same_name_as_its_composed_form() -> None:
    decomposed = "Rene\u0301"
    assert name_problem(normalise_name(decomposed)) is None
    assert normalise_name(decomposed) == unicodedata.normalize("NFC", decomposed) == "René"


@pytest.mark.parametrize("dot", ["・", "‧", "．", "･", "•"])
def test_other_middle_dots_become_the_register_separator(dot: str) -> None:
    name = normalise_name(f" 买买提{dot}艾力 ")
    assert name == "买买提·艾力"
    assert name_problem(name) is None


@pytest.mark.parametrize("bad", ["张3", "王@伟", "李\u0000", "", " ", "\u0301张"])
def test_digits_symbols_controls_and_a_leading_mark_are_refused(bad: str) -> None:
    assert name_problem(normalise_name(bad)) is not None
