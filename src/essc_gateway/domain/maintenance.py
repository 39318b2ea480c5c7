"""Maintenance windows (A16(1)(a)): the bank is not liable for an interruption announced in
advance. The gateway keeps every window with its announcement time, and during one it does
not call the platform for the operations the window covers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

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


class NoticeChannel(StrEnum):
    """Where a window was announced to holders: A16(1)(a) names these two."""

    WEBSITE = "WEBSITE"
    MOBILE_BANKING = "MOBILE_BANKING"


@dataclass(frozen=True, slots=True)
class Announcement:
    """The public notice of one version of a window: the fact A16(1)(a) rests on."""

    channels: frozenset[NoticeChannel]
    notice: str
    """The notice's text or its URL."""
    announced_by: str
    """The operator identity that recorded it."""


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
    announcement: Announcement | None = None
    """This version's public notice; None when the change was not announced to holders."""

    @property
    def recorded_at(self) -> datetime:
        """When this version was made (announced, amended or cancelled)."""
        return self.cancelled_at or self.amended_at or self.announced_at

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


def announcement_fields(announcement: Announcement | None) -> dict[str, Any] | None:
    """A notice as plain data (the version history and the evidence log keep it so)."""
    if announcement is None:
        return None
    return {
        "channels": sorted(c.value for c in announcement.channels),
        "notice": announcement.notice,
        "announced_by": announcement.announced_by,
    }


def announcement_of(fields: Mapping[str, Any] | None) -> Announcement | None:
    """The notice `announcement_fields` gave (KeyError or ValueError when damaged)."""
    if fields is None:
        return None
    return Announcement(
        channels=frozenset(NoticeChannel(c) for c in fields["channels"]),
        notice=str(fields["notice"]),
        announced_by=str(fields["announced_by"]),
    )


def announcement_problems(announcement: Announcement) -> dict[str, str]:
    """Field -> what is wrong with a window's public notice."""
    problems: dict[str, str] = {}
    if announcement.channels and not announcement.notice.strip():
        problems["notice"] = "the notice's text or URL is required with a channel"
    if len(announcement.notice) > 2000:
        problems["notice"] = "must be at most 2000 characters"
    return problems
