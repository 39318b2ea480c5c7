"""People for a load: who is eligible, and applicants for Issue that are never issued twice,
however fast the target answers.

A worker's share of the eligible people is consumed in order. The set-up phase verifies the
first `LoadOptions.applicants` of them; an Issue past those verifies the next fresh person on
the spot (counted, so that a benchmark can tell its measurement was not pure Issue). When the
share is used up the worker's measured phase ends (`ApplicantsExhausted`): a load never falls
back to people it has issued already, whose answers (ALREADY_HELD) would measure less work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from essc_gateway.simplatform import Person, Population, iter_people


class ApplicantsExhausted(Exception):
    """This worker's share of the population has no fresh applicant left."""


@dataclass
class ApplicantCounts:
    """What a load did with its applicants (summed over workers)."""

    issued_again: int = 0
    """Issue answers ALREADY_HELD: the person held a card before (0 in a valid run)."""
    verified_during_load: int = 0
    """Applicants verified in the measured phase, past those prepared in set-up."""
    exhausted: bool = False
    """A worker ran out of fresh applicants and ended its measured phase early."""

    def add(self, other: ApplicantCounts) -> None:
        self.issued_again += other.issued_again
        self.verified_during_load += other.verified_during_load
        self.exhausted = self.exhausted or other.exhausted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def is_eligible(person: Person, today: date) -> bool:
    """An employed adult (18-59) with full capacity: no guardian, records to query."""
    return (
        18 <= person.age_on(today) < 60
        and person.civil_capacity == "FULL"
        and person.personal_status == "EMPLOYED"
    )


def eligible_people(population: Population, today: date) -> list[Person]:
    """The eligible people of `population`, in its order."""
    return [p for p in population.people if is_eligible(p, today)]


def population_size_for(seed: int, eligible: int, today: date) -> int:
    """The size of the smallest population of `seed` that holds `eligible` eligible people
    (populations of one seed are prefixes of each other)."""
    found = 0
    people: Iterator[Person] = iter_people(seed)
    size = 0
    while found < eligible:
        found += is_eligible(next(people), today)
        size += 1
    return size
