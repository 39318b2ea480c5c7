"""The simulated platform's register kept across development runs (issue 10, defect 9)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from essc_gateway.simplatform import PlatformState, generate_population
from essc_gateway.simplatform.persistence import RegisterFile, RegisterFileError
from essc_gateway.testing import FakeClock


def _state() -> PlatformState:
    return PlatformState(generate_population(5, 200), clock=FakeClock(), rng=random.Random(1))


def test_a_saved_register_comes_back_with_its_cards(tmp_path: Path) -> None:
    first = _state()
    person = next(p for p in first.population.people if p.civil_capacity == "FULL")
    issued = first.issue_card(
        idempotency_key="k1",
        bank_id="bank-a",
        id_number=person.id_number,
        name=person.name,
        mobile_phone=person.mobile_phone,
        card_number=person.card_number,
    )
    RegisterFile(tmp_path / "register", first, "5:200").save()
    assert (tmp_path / "register").stat().st_mode & 0o777 == 0o600

    second = _state()
    assert RegisterFile(tmp_path / "register", second, "5:200").load() == 1
    assert second.get_card(issued.card.essc_id) == issued.card


def test_another_populations_register_or_a_shared_file_is_refused(tmp_path: Path) -> None:
    RegisterFile(tmp_path / "register", _state(), "5:200").save()
    with pytest.raises(RegisterFileError, match="another population"):
        RegisterFile(tmp_path / "register", _state(), "5:201").load()
    (tmp_path / "register").chmod(0o644)
    with pytest.raises(RegisterFileError, match="0600"):
        RegisterFile(tmp_path / "register", _state(), "5:200").load()


def test_a_register_cut_short_is_refused_with_a_message(tmp_path: Path) -> None:
    RegisterFile(tmp_path / "register", _state(), "5:200").save()
    path = tmp_path / "register"
    path.write_bytes(path.read_bytes()[:-20])  # as a crash in the middle of a write
    with pytest.raises(RegisterFileError, match="cannot be read"):
        RegisterFile(path, _state(), "5:200").load()
