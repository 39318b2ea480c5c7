"""The national SSC service platform, simulated behind its real gRPC contract."""

from __future__ import annotations

from essc_gateway.simplatform.faults import ALL_METHODS, CallPlan, FaultPlan, Latency
from essc_gateway.simplatform.population import (
    BIOMETRIC_MATCH_MAX_DISTANCE,
    Contribution,
    Person,
    Population,
    Qualification,
    biometric_matches,
    biometric_sample,
    generate_population,
)
from essc_gateway.simplatform.server import SimulatedPlatform, run_platform
from essc_gateway.simplatform.state import (
    Card,
    CardStatus,
    ForbiddenError,
    IssueOutcome,
    NotFoundError,
    PlatformState,
    PlatformStateError,
    PreconditionError,
)

__all__ = [
    "ALL_METHODS",
    "BIOMETRIC_MATCH_MAX_DISTANCE",
    "CallPlan",
    "Card",
    "CardStatus",
    "Contribution",
    "FaultPlan",
    "ForbiddenError",
    "IssueOutcome",
    "Latency",
    "NotFoundError",
    "Person",
    "PlatformState",
    "PlatformStateError",
    "Population",
    "PreconditionError",
    "Qualification",
    "SimulatedPlatform",
    "biometric_matches",
    "biometric_sample",
    "generate_population",
    "run_platform",
]
