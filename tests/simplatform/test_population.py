"""The synthetic population: deterministic, valid identities, every kind of person."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import date

import phonenumbers
import pytest
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from essc_gateway.domain.citizen_id import check_character, parse_citizen_id
from essc_gateway.simplatform import (
    Population,
    biometric_matches,
    biometric_sample,
    generate_population,
)
from essc_gateway.simplatform.population import POPULATION_AS_OF

AS_OF = POPULATION_AS_OF


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population()


def test_same_seed_gives_the_same_people() -> None:
    assert generate_population(7, 300).people == generate_population(7, 300).people


def test_a_smaller_population_is_a_prefix_of_a_larger_one() -> None:
    # The bench sizes the platform's population from a measured rate: people already
    # chosen must stay the same whatever size is asked for.
    assert generate_population(7, 500).people[:200] == generate_population(7, 200).people


def test_different_seeds_give_different_people() -> None:
    first = {p.id_number for p in generate_population(7, 300).people}
    second = {p.id_number for p in generate_population(8, 300).people}
    assert len(first & second) < 5


def test_generation_ignores_the_global_random_source() -> None:
    saved = random.getstate()
    try:
        random.seed(1)
        first = generate_population(3, 50)
        random.seed(2)
        second = generate_population(3, 50)
    finally:
        random.setstate(saved)
    assert first.people == second.people


def test_id_numbers_are_valid_gb11643(population: Population) -> None:
    known_area = 0
    for person in population.people:
        citizen = parse_citizen_id(person.id_number, AS_OF)
        assert citizen.birth_date == person.birth_date
        assert person.id_number[-1] == check_character(person.id_number[:17])
        # Independent oracle: python-stdnum's own check digit.
        assert ric.calc_check_digit(person.id_number) == person.id_number[-1]
        try:
            ric.validate(person.id_number)
        except ValidationError:
            continue  # its area table dates some districts; checked digits already
        known_area += 1
    assert known_area > len(population) // 2


def test_ids_cards_and_phones_are_unique(population: Population) -> None:
    people = population.people
    assert len({p.id_number for p in people}) == len(people)
    assert len({p.card_number for p in people}) == len(people)
    assert len({p.mobile_phone for p in people}) == len(people)
    assert all(re.fullmatch(r"[A-Z][0-9]{8}", p.card_number) for p in people)


def test_phones_are_valid_chinese_mobiles(population: Population) -> None:
    for person in population.people:
        number = phonenumbers.parse(person.mobile_phone)
        assert number.country_code == 86
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == (
            person.mobile_phone
        )


def test_every_kind_of_person_is_present(population: Population) -> None:
    ages = [p.age_on(AS_OF) for p in population.people]
    assert sum(age < 14 for age in ages) > 50  # A5: children needing a guardian's consent
    assert sum(14 <= age < 18 for age in ages) > 20
    assert sum(age >= 60 for age in ages) > 50
    x_ending = sum(p.id_number.endswith("X") for p in population.people)
    assert len(population) / 20 < x_ending < len(population) / 6  # about 1 in 11
    assert min(p.birth_date.year for p in population.people) < 1940
    assert max(p.birth_date.year for p in population.people) > 2020


def test_capacity_and_status_follow_age(population: Population) -> None:
    adults_without_capacity = 0
    for person in population.people:
        age = person.age_on(AS_OF)
        if age < 8:
            assert person.civil_capacity == "NONE"
        elif age < 18:
            assert person.civil_capacity == "LIMITED"
        else:
            assert person.civil_capacity in {"FULL", "NONE"}
            adults_without_capacity += person.civil_capacity == "NONE"
        if age < 18:
            assert person.personal_status == "UNEMPLOYED"
            assert person.contributions == ()
        if age >= 60:
            assert person.personal_status == "RETIRED"
    adults = sum(p.age_on(AS_OF) >= 18 for p in population.people)
    assert 0 < adults_without_capacity < adults * 0.05
    statuses = Counter(p.personal_status for p in population.people)
    assert statuses["EMPLOYED"] > statuses["UNEMPLOYED"] > 0


def test_employed_adults_have_a_year_of_contributions(population: Population) -> None:
    employed = population.find(lambda p: p.personal_status == "EMPLOYED")
    periods = sorted({c.period for c in employed.contributions})
    # The twelve months before the population's reference day (2026-11-01).
    assert periods == ["2025-11", "2025-12"] + [f"2026-{month:02d}" for month in range(1, 11)]
    types = {c.insurance_type for c in employed.contributions}
    assert {"PENSION", "MEDICAL"} <= types
    for record in employed.contributions:
        assert record.base_fen > 0
        assert record.employer_fen > 0
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}", record.period)
    pension = next(c for c in employed.contributions if c.insurance_type == "PENSION")
    assert pension.personal_fen == round(pension.base_fen * 0.08)


def test_qualifications_are_well_formed(population: Population) -> None:
    qualified = [p for p in population.people if p.qualifications]
    assert qualified
    for person in qualified:
        for qualification in person.qualifications:
            issued = date.fromisoformat(qualification.issued_on)
            assert person.birth_date < issued <= AS_OF
            assert qualification.title
            assert qualification.level


def test_repr_masks_personal_data(population: Population) -> None:
    person = population.people[0]
    text = repr(person) + str(person) + repr(population)
    for secret in (person.name, person.id_number, person.mobile_phone, person.card_number):
        assert secret not in text
    assert person.biometric_template.hex() not in text


def test_lookups(population: Population) -> None:
    person = population.people[42]
    assert population.by_id(person.id_number) is person
    assert population.by_phone(person.mobile_phone) is person
    assert population.by_id("110101190001010000") is None
    assert population.find(lambda p: p.id_number.endswith("X")).id_number.endswith("X")
    with pytest.raises(LookupError):
        population.find(lambda p: False)


def test_samples_are_deterministic_adults_with_full_capacity(population: Population) -> None:
    today = date(2026, 11, 2)
    samples = population.samples(today, 3)
    assert len(samples) == 3
    assert samples == generate_population().samples(today, 3)
    for person in samples:
        assert 18 <= person.age_on(today) < 60
        assert person.civil_capacity == "FULL"


def test_live_capture_matches_its_template_only(population: Population) -> None:
    rng = random.Random(5)
    person, stranger = population.people[0], population.people[1]
    sample = biometric_sample(person, rng)
    assert sample != person.biometric_template
    assert biometric_matches(person.biometric_template, sample)
    assert biometric_matches(person.biometric_template, biometric_sample(person, rng, 24))
    assert not biometric_matches(person.biometric_template, biometric_sample(person, rng, 25))
    assert not biometric_matches(stranger.biometric_template, sample)
    assert not biometric_matches(person.biometric_template, sample[:-1])
    assert not biometric_matches(person.biometric_template, b"")
    # Random captures sit near 128 differing bits: none of many may match.
    assert not any(
        biometric_matches(person.biometric_template, rng.randbytes(32)) for _ in range(1000)
    )
