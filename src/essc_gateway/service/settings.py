"""Tunables of the use cases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType


@dataclass(frozen=True)
class ServiceSettings:
    """Lifetimes, limits and accepted agreement versions."""

    verification_token_ttl: timedelta = timedelta(minutes=10)
    """How long a Verify result may be used to Issue."""
    auth_token_ttl: timedelta = timedelta(minutes=5)
    """How long an Authenticate result may be used for its scenario."""
    max_factor_failures: int = 5
    """Wrong factors in a row before the holder is locked out."""
    lockout: timedelta = timedelta(minutes=30)
    """How long a lockout lasts."""
    agreement_versions: Mapping[str, date] = field(
        default_factory=lambda: MappingProxyType({"2024-03-20": date(2024, 3, 20)})
    )
    """User-agreement versions a consent may name, each with the day it took effect in
    China (A1, A12): a consent cannot predate the version it accepts."""
    consent_clock_skew: timedelta = timedelta(minutes=5)
    """How far in the future a consent time may lie (the bank's clock may run ahead)."""
    consent_max_age: timedelta = timedelta(days=30)
    """How long before the Issue request a consent may have been given: older is no
    plausible evidence that this application was agreed to (A1)."""
    sms_resend_interval: timedelta = timedelta(seconds=60)
    """Least time between two SMS codes for one holder and purpose."""
    sms_daily_limit: int = 10
    """SMS codes one holder may be sent in 24 hours."""
    issue_lease: timedelta = timedelta(seconds=15)
    """Longest an Issue request holds its idempotency key (shorter when the caller's deadline
    is): past it the request has certainly ended, and a retry or the reconciler settles
    what it left."""

    def __post_init__(self) -> None:
        if self.max_factor_failures < 1:
            raise ValueError("max_factor_failures must be at least 1")
        if not self.agreement_versions:
            raise ValueError("at least one agreement version must be accepted")
        for name in (
            "verification_token_ttl",
            "auth_token_ttl",
            "lockout",
            "issue_lease",
            "consent_max_age",
        ):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
