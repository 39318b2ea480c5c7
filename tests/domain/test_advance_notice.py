"""When a moment of a maintenance window was announced in advance (A16(1)(a)), judged on the
window's whole version history, part by part."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from essc_gateway.domain.advance_notice import advance_notice
from essc_gateway.domain.maintenance import (
    Announcement,
    MaintenanceWindow,
    NoticeChannel,
    WindowKind,
)

NINE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PUBLIC = Announcement(frozenset({NoticeChannel.WEBSITE}), "https://bank.example/n/1", "ops")
UNPUBLISHED = Announcement(frozenset(), "", "ops")


def first(
    announced_at: datetime = NINE,
    notice: Announcement | None = PUBLIC,
    kind: WindowKind = WindowKind.BANK,
) -> MaintenanceWindow:
    """14:00 to 15:00, all RPCs."""
    return MaintenanceWindow(
        window_id="mw-1",
        kind=kind,
        starts_at=NINE + 5 * HOUR,
        ends_at=NINE + 6 * HOUR,
        rpcs=frozenset(),
        reason="upgrade",
        announced_at=announced_at,
        announcement=notice,
    )


def amend(
    previous: MaintenanceWindow,
    at: datetime,
    notice: Announcement | None = PUBLIC,
    **changes: object,
) -> MaintenanceWindow:
    return replace(
        previous, amended_at=at, version=previous.version + 1, announcement=notice, **changes
    )  # type: ignore[arg-type]


def in_advance(history: list[MaintenanceWindow], at: datetime, rpc: str = "Issue") -> bool | None:
    notice = advance_notice(history, rpc, at, HOUR)
    return None if notice is None else notice.in_advance


def test_announced_publicly_the_minimum_notice_before_the_start_is_in_advance() -> None:
    assert in_advance([first()], NINE + 5.5 * HOUR) is True


def test_less_notice_than_the_minimum_or_no_public_channel_is_not() -> None:
    assert in_advance([first(announced_at=NINE + 4.5 * HOUR)], NINE + 5.5 * HOUR) is False
    assert in_advance([first(notice=UNPUBLISHED)], NINE + 5.5 * HOUR) is False
    assert in_advance([first(notice=None)], NINE + 5.5 * HOUR) is False


def test_a_retroactive_window_is_never_in_advance() -> None:
    assert in_advance([first(announced_at=NINE + 5.2 * HOUR)], NINE + 5.1 * HOUR) is False


def test_extended_once_begun_the_announced_part_stays_and_the_extension_is_not() -> None:
    v1 = first()
    v2 = amend(v1, NINE + 5.5 * HOUR, ends_at=NINE + 7 * HOUR)
    history = [v1, v2]
    assert in_advance(history, NINE + 5.75 * HOUR) is True  # the part announced at 09:00
    assert in_advance(history, NINE + 6.5 * HOUR) is False  # added at 14:30 for 15:00
    notice = advance_notice(history, "Issue", NINE + 6.5 * HOUR, HOUR)
    assert notice is not None
    assert (notice.part_version, notice.part_starts_at) == (2, NINE + 6 * HOUR)


def test_an_extension_announced_the_minimum_notice_before_its_part_is_in_advance() -> None:
    v1 = first()
    v2 = amend(v1, NINE + 4 * HOUR, ends_at=NINE + 7 * HOUR)  # 13:00 for a part at 15:00
    assert in_advance([v1, v2], NINE + 6.5 * HOUR) is True
    late = amend(v1, NINE + 5.5 * HOUR, ends_at=NINE + 7 * HOUR, notice=UNPUBLISHED)
    assert in_advance([v1, late], NINE + 6.5 * HOUR) is False


def test_moved_earlier_the_new_part_is_judged_from_its_own_start() -> None:
    v1 = first()
    v2 = amend(v1, NINE + 3.5 * HOUR, starts_at=NINE + 4 * HOUR)  # 12:30 for 13:00
    assert in_advance([v1, v2], NINE + 4.5 * HOUR) is False
    assert in_advance([v1, v2], NINE + 5.5 * HOUR) is True


def test_shortening_keeps_the_notice_and_cancelling_leaves_nothing_to_cover() -> None:
    v1 = first()
    shorter = amend(v1, NINE + 5.2 * HOUR, ends_at=NINE + 5.5 * HOUR)
    assert in_advance([v1, shorter], NINE + 5.25 * HOUR) is True
    cancelled = replace(v1, cancelled_at=NINE + 5.2 * HOUR, version=2, announcement=None)
    assert in_advance([v1, cancelled], NINE + 5.4 * HOUR) is None
    # A moment before the cancellation was recorded: version 1 applied then.
    assert in_advance([v1, cancelled], NINE + 5.1 * HOUR) is True


def test_a_part_removed_then_added_back_is_a_new_part() -> None:
    v1 = first()
    v2 = amend(v1, NINE + 1 * HOUR, ends_at=NINE + 5.5 * HOUR)
    v3 = amend(v2, NINE + 5.4 * HOUR, ends_at=NINE + 6 * HOUR)  # 14:24 for 14:30
    assert in_advance([v1, v2, v3], NINE + 5.75 * HOUR) is False


def test_an_rpc_newly_covered_is_a_new_part_for_that_rpc() -> None:
    v1 = replace(first(), rpcs=frozenset({"Issue"}))
    v2 = amend(v1, NINE + 5.5 * HOUR, rpcs=frozenset({"Issue", "Query"}))
    assert in_advance([v1, v2], NINE + 5.75 * HOUR, "Issue") is True
    assert in_advance([v1, v2], NINE + 5.75 * HOUR, "Query") is False
    assert in_advance([v1, v2], NINE + 5.75 * HOUR, "Verify") is None


def test_the_platforms_own_window_is_never_the_banks_announcement() -> None:
    assert in_advance([first(kind=WindowKind.PLATFORM)], NINE + 5.5 * HOUR) is False


def test_a_later_public_notice_of_the_same_part_counts_if_in_time() -> None:
    unannounced = first(notice=None)  # recorded without a public notice
    published = amend(unannounced, NINE + 2 * HOUR, reason="upgrade (announced)")
    assert in_advance([unannounced, published], NINE + 5.5 * HOUR) is True
    too_late = amend(unannounced, NINE + 4.5 * HOUR, reason="upgrade (announced)")
    assert in_advance([unannounced, too_late], NINE + 5.5 * HOUR) is False
