"""The maintenance calendar: announce, amend, cancel and look up windows (A16(1)(a)).

Windows live in the store (every version kept) and in memory, so the per-call check costs a
scan of the few windows that have not ended, with no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from essc_gateway.clock import Clock
from essc_gateway.domain.advance_notice import AdvanceNotice, advance_notice
from essc_gateway.domain.maintenance import (
    Announcement,
    MaintenanceWindow,
    WindowKind,
    announcement_problems,
    window_problems,
)
from essc_gateway.errors import (
    ErrorReason,
    FieldViolation,
    InvalidRequest,
    MaintenanceInProgress,
    NotFound,
)
from essc_gateway.store.base import Store, WindowChange


class MaintenanceCalendar:
    def __init__(self, store: Store, clock: Clock, grace: timedelta, min_notice: timedelta) -> None:
        """Args:
        grace: after a window ends, failures are noted as its overrun (evidence only).
        min_notice: how long before a part of a window its public notice must come for
            that part to be announced in advance (A16(1)(a)).
        """
        self._store = store
        self._clock = clock
        self._grace = grace
        self.min_notice = min_notice
        self._windows: dict[str, MaintenanceWindow] = {}
        self._history: dict[str, list[MaintenanceWindow]] = {}

    async def load(self) -> None:
        history: dict[str, list[MaintenanceWindow]] = {}
        for version in await self._store.window_versions():
            history.setdefault(version.window_id, []).append(version)
        self._history = history
        self._windows = {window_id: versions[-1] for window_id, versions in history.items()}

    def _keep(self, window: MaintenanceWindow) -> None:
        versions = self._history.setdefault(window.window_id, [])
        if not versions or versions[-1].version < window.version:
            versions.append(window)
        self._windows[window.window_id] = versions[-1]

    def get(self, window_id: str) -> MaintenanceWindow | None:
        return self._windows.get(window_id)

    def history(self, window_id: str) -> list[MaintenanceWindow]:
        """Every version of the window, in order."""
        return list(self._history.get(window_id, ()))

    def notice(
        self, window_id: str, rpc: str, at: datetime, applied_version: int | None = None
    ) -> AdvanceNotice | None:
        """Whether the part of the window covering `rpc` at `at` was announced in advance."""
        return advance_notice(
            self._history.get(window_id, ()), rpc, at, self.min_notice, applied_version
        )

    def between(self, since: datetime, until: datetime) -> list[MaintenanceWindow]:
        return sorted(
            (w for w in self._windows.values() if w.starts_at < until and w.ends_at > since),
            key=lambda w: w.starts_at,
        )

    def active(self, rpc: str, now: datetime) -> MaintenanceWindow | None:
        """The covering window that ends last, if any is on now."""
        covering = [w for w in self._windows.values() if w.active(rpc, now)]
        return max(covering, key=lambda w: w.ends_at, default=None)

    def overrunning(self, rpc: str, now: datetime) -> MaintenanceWindow | None:
        """A window that ended less than the grace period ago: failures still belong to it."""
        late = [w for w in self._windows.values() if w.overrunning(rpc, now, self._grace)]
        return max(late, key=lambda w: w.ends_at, default=None)

    def refuse(self, rpc: str, now: datetime) -> None:
        """Raises MaintenanceInProgress if a window covers `rpc` now."""
        window = self.active(rpc, now)
        if window is not None:
            raise in_progress(window, self.notice(window.window_id, rpc, now), now)

    def windows(self, current_only: bool) -> list[MaintenanceWindow]:
        now = self._clock.now()
        chosen = [
            w
            for w in self._windows.values()
            if not current_only or (w.cancelled_at is None and w.ends_at > now)
        ]
        return sorted(chosen, key=lambda w: (w.starts_at, w.window_id))

    @staticmethod
    def _check(
        starts_at: datetime,
        ends_at: datetime,
        rpcs: frozenset[str],
        reason: str,
        announcement: Announcement | None,
    ) -> None:
        problems = window_problems(starts_at, ends_at, rpcs, reason)
        if announcement is not None:
            problems.update(announcement_problems(announcement))
        if problems:
            raise InvalidRequest([FieldViolation(f, d, "INVALID") for f, d in problems.items()])

    async def announce(
        self,
        kind: WindowKind,
        starts_at: datetime,
        ends_at: datetime,
        rpcs: frozenset[str],
        reason: str,
        announcement: Announcement | None,
    ) -> MaintenanceWindow:
        """Records a window; `announcement` is its public notice (None: not announced to
        holders, so never A16(1)(a))."""
        self._check(starts_at, ends_at, rpcs, reason, announcement)
        now = self._clock.now()
        window = MaintenanceWindow(
            window_id=f"mw-{uuid.uuid4().hex[:16]}",
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            rpcs=rpcs,
            reason=reason.strip(),
            announced_at=now,
            announcement=announcement,
        )
        await self._store.save_window(window, now)
        self._keep(window)
        return window

    async def amend(
        self,
        window_id: str,
        starts_at: datetime | None,
        ends_at: datetime | None,
        rpcs: frozenset[str] | None,
        reason: str | None,
        announcement: Announcement | None,
    ) -> MaintenanceWindow:
        """A new version; `announcement` is the public notice of the change (None: the
        change was not announced, so a part it adds is never A16(1)(a))."""
        now = self._clock.now()

        def change(current: MaintenanceWindow) -> MaintenanceWindow:
            # Applied to the stored window: another replica may have changed it since.
            new_start = starts_at or current.starts_at
            new_end = ends_at or current.ends_at
            new_rpcs = current.rpcs if rpcs is None else rpcs
            new_reason = reason.strip() if reason else current.reason
            self._check(new_start, new_end, new_rpcs, new_reason, announcement)
            return replace(
                current,
                starts_at=new_start,
                ends_at=new_end,
                rpcs=new_rpcs,
                reason=new_reason,
                amended_at=now,
                announcement=announcement,
            )

        return await self._update(window_id, change, now)

    async def cancel(
        self, window_id: str, announcement: Announcement | None = None
    ) -> MaintenanceWindow:
        now = self._clock.now()

        def change(current: MaintenanceWindow) -> MaintenanceWindow:
            if current.cancelled_at is not None:
                return current
            return replace(current, cancelled_at=now, announcement=announcement)

        return await self._update(window_id, change, now)

    async def _update(
        self, window_id: str, change: WindowChange, now: datetime
    ) -> MaintenanceWindow:
        window = await self._store.update_window(window_id, change, now)
        if window is None:
            raise NotFound("no such maintenance window", reason=ErrorReason.WINDOW_NOT_FOUND)
        self._keep(window)
        return window


def in_progress(
    window: MaintenanceWindow, notice: AdvanceNotice | None, now: datetime
) -> MaintenanceInProgress:
    return MaintenanceInProgress(
        f"{window.kind.value.lower()} maintenance in progress; retry after it ends",
        retry_after=window.ends_at - now,
        metadata={
            "window_id": window.window_id,
            "kind": window.kind.value,
            "ends_at": window.ends_at.isoformat(),
            "announced_at": window.announced_at.isoformat(),
            "window_version": str(window.version),
            "announced_in_advance": str(notice is not None and notice.in_advance).lower(),
        },
    )
