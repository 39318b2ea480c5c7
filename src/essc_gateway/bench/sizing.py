"""How many people the benchmark needs, from a measured Issue rate rather than an assumed one.

Each Issue uses up a person (one live e-SSC per person), so the applicants prepared for an
Issue run and the population of the platform depend on how fast this machine issues. The
bench measures that first (`suite.calibrate_issue`), then sizes everything from it with a
margin: a machine ten times faster gets ten times the applicants and people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from essc_gateway.loadtest.config import HOLDER_RPCS

CALIBRATION_SECONDS = 1.0
"""Length of one calibration run (shorter when the bench's own runs are)."""
CALIBRATION_ATTEMPTS = 4
"""Calibration runs at most, each with twice the applicants of the one before, until one
lasts its full time without running out of them."""
RATE_MARGIN = 2.0
"""Applicants for a maximum-load run: this many times the calibrated rate times its length."""
_POPULATION_MARGIN = 1.1


def first_calibration_applicants(concurrency: int) -> int:
    """Applicants of the first calibration run: enough to fill the closed loop many times."""
    return max(64, 8 * concurrency)


def calibration_people(concurrency: int) -> int:
    """Eligible people that the calibration attempts may use together (each doubles the
    applicants of the one before only when that one ran out)."""
    first = first_calibration_applicants(concurrency)
    return sum(first * 2**attempt for attempt in range(CALIBRATION_ATTEMPTS))


@dataclass(frozen=True)
class IssueSizing:
    """Applicants for the Issue runs, from Issue's calibrated maximum rate."""

    rate: float
    """Issues per second at maximum load, calibrated (0 when Issue is not measured)."""
    duration: float
    """Seconds of each measured run."""
    concurrency: int
    load_workers: int

    @property
    def max_load_applicants(self) -> int:
        """Applicants for the maximum-throughput run: twice what the calibrated rate issues
        in a run, and never fewer than two calibration runs' worth."""
        if self.rate <= 0:
            return 0
        by_rate = math.ceil(RATE_MARGIN * self.rate * self.duration) + self.concurrency
        return max(by_rate, 2 * first_calibration_applicants(self.concurrency))

    def eligible_people(self, rpcs: tuple[str, ...], holders: int, repeats: int = 1) -> int:
        """Eligible people that every run of the bench uses up together, each measurement
        repeated `repeats` times."""
        most = self.max_load_applicants
        # Two half-load runs (gateway, platform) at half the maximum rate reached, which the
        # maximum-load run's applicants bound, plus the per-worker rounding of their shares.
        half = math.ceil(most / 2) + 2 * max(self.load_workers, 1)
        # Then one more maximum-load run: the same Issue load on PostgreSQL.
        issue = 2 * most + 2 * half if most else 0
        # Three runs (maximum, half load on the gateway and on the platform) prepare holders.
        holder_runs = 3 * sum(1 for rpc in rpcs if rpc in HOLDER_RPCS)
        return repeats * math.ceil((issue + holder_runs * holders) * _POPULATION_MARGIN)
