"""The bench sizes its applicants and population from a measured Issue rate (issue 16)."""

from __future__ import annotations

from datetime import date

from essc_gateway.bench.sizing import IssueSizing, calibration_people
from essc_gateway.loadtest.applicants import eligible_people, population_size_for
from essc_gateway.simplatform import generate_population

TODAY = date(2026, 12, 4)


def test_population_size_for_is_the_smallest_with_that_many_eligible() -> None:
    size = population_size_for(7, 120, TODAY)

    assert len(eligible_people(generate_population(7, size), TODAY)) == 120
    assert len(eligible_people(generate_population(7, size - 1), TODAY)) == 119


def test_applicants_grow_with_the_calibrated_rate() -> None:
    slow = IssueSizing(rate=250.0, duration=5.0, concurrency=32, load_workers=2)
    ten_times_faster = IssueSizing(rate=2500.0, duration=5.0, concurrency=32, load_workers=2)

    # Twice what the calibrated rate issues in a run, plus the requests in flight.
    assert slow.max_load_applicants == 2 * 250 * 5 + 32
    assert ten_times_faster.max_load_applicants == 2 * 2500 * 5 + 32
    # The people of the four Issue runs (maximum, half load on gateway and platform, maximum
    # on PostgreSQL) and of the holders' runs, whatever the rate.
    for sizing in (slow, ten_times_faster):
        needed = sizing.eligible_people(("issue", "query", "authenticate"), holders=40)
        most = sizing.max_load_applicants
        assert needed >= most + 2 * (most // 2) + most + 2 * 3 * 40


def test_no_issue_measured_needs_people_for_holders_only() -> None:
    sizing = IssueSizing(rate=0.0, duration=5.0, concurrency=32, load_workers=2)

    assert sizing.max_load_applicants == 0
    assert sizing.eligible_people(("verify", "query"), holders=40) >= 3 * 40
    assert calibration_people(32) == 256 * (1 + 2 + 4 + 8)


def test_a_calibration_that_stalled_still_gives_two_calibration_runs_worth() -> None:
    # A stall of the machine during calibration (seen: 16/s measured for 300/s real) must
    # not leave the maximum-load run a handful of applicants.
    stalled = IssueSizing(rate=16.4, duration=0.4, concurrency=4, load_workers=0)
    assert stalled.max_load_applicants == 2 * 64


def test_each_repeat_of_the_runs_gets_people_of_its_own() -> None:
    sizing = IssueSizing(rate=300.0, duration=5.0, concurrency=32, load_workers=2)
    once = sizing.eligible_people(("issue", "query"), holders=40)
    assert sizing.eligible_people(("issue", "query"), holders=40, repeats=3) == 3 * once
