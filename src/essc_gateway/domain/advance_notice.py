"""Whether a moment of a maintenance window was announced in advance (A16(1)(a)), from the
window's whole version history. A window is announced part by part: the part first announced
keeps its notice through later changes, while an extension or a part moved earlier is a new
part, starting where it adds to the window. A part is announced in advance when a version
that covered it, from the one that added it on, gave a public notice at least the minimum
notice before the part begins (a later notice of the same part counts: the holders were
told). Shortening or cancelling adds no part, so it never makes a moment "announced in
advance"; a version recorded after the part begins (a retroactive window) never does either."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from essc_gateway.domain.maintenance import MaintenanceWindow, WindowKind


@dataclass(frozen=True, slots=True)
class AdvanceNotice:
    """The part of a window that covers one moment, and whether its notice was in advance."""

    in_advance: bool
    applied_version: int
    """The version in force for the moment (the last one recorded by then, or the latest)."""
    part_version: int
    """The version that added the part covering the moment."""
    part_starts_at: datetime
    part_announced_at: datetime
    """When the part's public notice was recorded (the adding version's time if none was)."""
    public: bool
    """A version covering the part was announced on a public channel (website, mobile
    banking)."""


def _part_start(
    previous: MaintenanceWindow | None, added: MaintenanceWindow, at: datetime
) -> datetime:
    """Where the part of `added` that covers `at` begins, if `previous` did not cover `at`."""
    if previous is None or previous.cancelled_at is not None:
        return added.starts_at
    if at >= previous.ends_at:  # an extension (or a move later): the new part starts at the old end
        return max(previous.ends_at, added.starts_at)
    return added.starts_at  # moved earlier, or the RPC newly covered


def advance_notice(
    history: Sequence[MaintenanceWindow],
    rpc: str,
    at: datetime,
    min_notice: timedelta,
    applied_version: int | None = None,
) -> AdvanceNotice | None:
    """The notice of the moment `at` for `rpc`, judged on `history` (a window's versions, in
    version order) up to `applied_version` (default: the last version recorded by `at`, else
    the first). None when that version does not cover the moment."""
    if not history:
        return None
    if applied_version is None:
        recorded = [w.version for w in history if w.recorded_at <= at]
        applied_version = recorded[-1] if recorded else history[0].version
    previous: MaintenanceWindow | None = None
    run: list[MaintenanceWindow] = []
    starts_at: datetime | None = None
    applied: MaintenanceWindow | None = None
    for version in history:
        if version.version > applied_version:
            break
        if version.active(rpc, at):
            if not run:
                starts_at = _part_start(previous, version, at)
            run.append(version)
        else:
            run = []
        previous, applied = version, version
    if applied is None or not run or starts_at is None:
        return None
    published = [v for v in run if v.announcement is not None and v.announcement.channels]
    in_time = [v for v in published if v.recorded_at <= starts_at - min_notice]
    notice = (in_time or published or run)[0]
    return AdvanceNotice(
        in_advance=applied.kind is WindowKind.BANK and bool(in_time),
        applied_version=applied.version,
        part_version=run[0].version,
        part_starts_at=starts_at,
        part_announced_at=notice.recorded_at,
        public=bool(published),
    )
