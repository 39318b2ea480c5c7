"""Maintenance windows (A16(1)(a)): the bank is not liable for an interruption announced in
advance. The gateway keeps every window with its announcement time, and during one it does
not call the platform for the operations the window covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# The bank-facing RPCs a window can cover; GetIssueStatus is served from the store.
GATEWAY_RPCS = frozenset(
    {
        "Verify",
        "Issue",
        "RequestSmsCode",
        "Authenticate",
        "ChangePassword",
        "Query",
        "AuthorizeContinuedUse",
        "Terminate",
    }
)


class WindowKind(StrEnum):
    BANK = "BANK"
    PLATFORM = "PLATFORM"


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    window_id: str
    kind: WindowKind
    starts_at: datetime
    ends_at: datetime
    rpcs: frozenset[str]
    """Covered RPC names; empty covers all of them."""
    reason: str
    announced_at: datetime
    amended_at: datetime | None = None
    cancelled_at: datetime | None = None
    version: int = 1

    def covers_rpc(self, rpc: str) -> bool:
        return not self.rpcs or rpc in self.rpcs

    def active(self, rpc: str, now: datetime) -> bool:
        """The window is on for `rpc` at `now`: the platform is not called."""
        return (
            self.cancelled_at is None
            and self.starts_at <= now < self.ends_at
            and self.covers_rpc(rpc)
        )

    def overrunning(self, rpc: str, now: datetime, grace: timedelta) -> bool:
        """Ended, but within the grace period in which failures still belong to it."""
        return (
            self.cancelled_at is None
            and self.ends_at <= now < self.ends_at + grace
            and self.covers_rpc(rpc)
        )

    @property
    def announced_in_advance(self) -> bool:
        """A16(1)(a) needs the announcement before the start, and so does every change: a
        window amended once it had begun (extended, moved earlier) was not, as it stands,
        announced in advance."""
        return self.announced_at < self.starts_at and (
            self.amended_at is None or self.amended_at < self.starts_at
        )


def window_problems(
    starts_at: datetime, ends_at: datetime, rpcs: frozenset[str], reason: str
) -> dict[str, str]:
    """Field -> description of what is wrong with a window's definition."""
    problems: dict[str, str] = {}
    if ends_at <= starts_at:
        problems["ends_at"] = "must be after starts_at"
    unknown = sorted(rpcs - GATEWAY_RPCS)
    if unknown:
        problems["rpcs"] = "unknown RPC names: " + ", ".join(unknown)
    if not reason.strip() or len(reason) > 500:
        problems["reason"] = "must be 1-500 characters"
    return problems
