"""Tunables of the use cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


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
    agreement_versions: frozenset[str] = field(default_factory=lambda: frozenset({"2024-03-20"}))
    """User-agreement versions a consent may name (A1, A12)."""
    consent_clock_skew: timedelta = timedelta(minutes=5)
    """How far in the future a consent time may lie (the bank's clock may run ahead)."""
    sms_resend_interval: timedelta = timedelta(seconds=60)
    """Least time between two SMS codes for one holder and purpose."""
    sms_daily_limit: int = 10
    """SMS codes one holder may be sent in 24 hours."""
    issue_lease: timedelta = timedelta(seconds=30)
    """Longest an Issue request holds its idempotency key (shorter when the caller's deadline
    is): past it the request has certainly ended, and a retry or the reconciler settles
    what it left."""

    def __post_init__(self) -> None:
        if self.max_factor_failures < 1:
            raise ValueError("max_factor_failures must be at least 1")
        if not self.agreement_versions:
            raise ValueError("at least one agreement version must be accepted")
        for name in ("verification_token_ttl", "auth_token_ttl", "lockout", "issue_lease"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
