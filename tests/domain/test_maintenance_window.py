"""When a maintenance window counts as announced in advance (A16(1)(a))."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from essc_gateway.domain.maintenance import MaintenanceWindow, WindowKind

NINE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def window(announced_at: datetime, amended_at: datetime | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(
        window_id="mw-1",
        kind=WindowKind.BANK,
        starts_at=NINE + timedelta(hours=5),
        ends_at=NINE + timedelta(hours=6),
        rpcs=frozenset(),
        reason="upgrade",
        announced_at=announced_at,
        amended_at=amended_at,
    )


def test_a16_1_a_announced_before_the_start_is_in_advance() -> None:
    assert window(NINE).announced_in_advance
    assert window(NINE, amended_at=NINE + timedelta(hours=1)).announced_in_advance


def test_announced_at_the_start_or_later_is_not() -> None:
    assert not window(NINE + timedelta(hours=5)).announced_in_advance
    assert not window(NINE + timedelta(hours=6)).announced_in_advance


def test_amended_once_begun_is_not() -> None:
    assert not window(NINE, amended_at=NINE + timedelta(hours=5, minutes=30)).announced_in_advance
