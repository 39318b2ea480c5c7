"""Whether a moment of a maintenance window was announced in advance (A16(1)(a)), from the
window's whole version history. A window is announced part by part: the part first announced
keeps its notice through later changes, while an extension or a part moved earlier is a new
part, announced when the version that added it was recorded. Shortening or cancelling adds no
part, so it never makes a moment "announced in advance"; a version recorded after the part it
adds begins (a retroactive window) never does either."""

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
    public: bool
    """The adding version was announced on a public channel (website, mobile banking)."""


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
    part: tuple[MaintenanceWindow, datetime] | None = None
    applied: MaintenanceWindow | None = None
    for version in history:
        if version.version > applied_version:
            break
        if version.active(rpc, at):
            if part is None:
                part = (version, _part_start(previous, version, at))
        else:
            part = None
        previous, applied = version, version
    if applied is None or part is None:
        return None
    adder, starts_at = part
    public = adder.announcement is not None and bool(adder.announcement.channels)
    in_advance = (
        applied.kind is WindowKind.BANK and public and adder.recorded_at <= starts_at - min_notice
    )
    return AdvanceNotice(
        in_advance=in_advance,
        applied_version=applied.version,
        part_version=adder.version,
        part_starts_at=starts_at,
        part_announced_at=adder.recorded_at,
        public=public,
    )
