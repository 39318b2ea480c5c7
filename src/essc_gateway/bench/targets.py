"""What the benchmark measures per gateway RPC, and the targets it holds them to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    rpc: str
    platform_calls: int
    """Platform calls behind one request of this RPC (sent concurrently)."""
    cpu_ratio_target: float | None
    """Gateway CPU per request / echo CPU per request, at most; None: measured only."""


TARGETS = {
    "verify": Target("verify", 3, 4.5),
    "issue": Target("issue", 1, 4.0),
    "query": Target("query", 5, 2.5),
    "authenticate": Target("authenticate", 2, None),
}
