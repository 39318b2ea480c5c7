"""The HTML report as a person sees it: rendered by a real headless Chromium, at 12 000
failures over a year-long requested range whose data sits in one afternoon, with a window
extended once it had begun."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from essc_gateway.domain.maintenance import (
    Announcement,
    MaintenanceWindow,
    NoticeChannel,
    WindowKind,
)
from essc_gateway.liability.model import Clause, LiabilityRecord, LiabilityReport, WindowPart
from essc_gateway.liability.render import CLAUSE_COLOURS, report_to_html

NOON = datetime(2026, 11, 6, 12, 0, tzinfo=UTC)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _report() -> LiabilityReport:
    notice = Announcement(frozenset({NoticeChannel.WEBSITE}), "https://bank.example/n/7", "ops")
    first = MaintenanceWindow(
        window_id="mw-7",
        kind=WindowKind.BANK,
        starts_at=NOON + timedelta(hours=1),
        ends_at=NOON + timedelta(hours=2),
        rpcs=frozenset(),
        reason="core banking upgrade",
        announced_at=NOON - timedelta(days=2),
        announcement=notice,
    )
    extended = replace(
        first, ends_at=NOON + timedelta(hours=3), amended_at=NOON + timedelta(hours=1.5), version=2
    )
    records = tuple(
        LiabilityRecord(
            seq=n,
            request_id=f"req-{n}",
            trace_id="",
            bank_id="bank-a",
            rpc="Verify",
            at=NOON + timedelta(seconds=n),
            status_code="UNAVAILABLE",
            reason="PLATFORM_UNAVAILABLE",
            clause=Clause.A16_1_B,
            evidence={},
        )
        for n in range(12_000)
    )
    return LiabilityReport(
        generated_at=NOON + timedelta(hours=6),
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2027, 1, 1, tzinfo=UTC),
        bank_id="bank-a",
        records=records,
        outages=(),
        windows=(first, extended),
        incidents=(),
        checkpoint="essc-gateway/evidence\n12002\nAAAA\n\n— essc-gateway/evidence AAAA\n",
        totals={Clause.A16_1_B: 12_000},
        window_parts=(
            WindowPart("mw-7", 2, first.starts_at, first.ends_at, Clause.A16_1_A),
            WindowPart("mw-7", 2, first.ends_at, extended.ends_at, Clause.BANK),
        ),
    )


def _chromium(page: Path, *args: str) -> str:
    browser = shutil.which("chromium")
    assert browser is not None, "Debian's chromium is needed (scripts/ensure-services.sh)"
    done = subprocess.run(  # noqa: S603 - our own file, fixed flags
        [browser, *FLAGS, f"--user-data-dir={page.parent / 'profile'}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _has(image: Image.Image, colour: str, box: tuple[int, int, int, int]) -> int:
    """Pixels of `colour` (exactly, as Chromium paints flat fills) in `box`."""
    wanted = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    region = image.crop(box).convert("RGB")
    return sum(1 for pixel in region.get_flattened_data() if pixel == wanted)


def test_a_real_browser_shows_bins_versions_and_the_datas_own_range(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_to_html(_report()))
    dom = _chromium(page, "--dump-dom")
    shot = tmp_path / "shot.png"
    _chromium(page, "--window-size=1400,900", "--hide-scrollbars", f"--screenshot={shot}")
    # What the page holds once parsed by the browser.
    assert "Failed requests (12000)" in dom
    assert 0 < dom.count('class="record-bin"') <= 160
    assert dom.count('class="record-mark"') == 0
    assert 'data-ref="mw-7/v1"' in dom  # the first version, faded
    assert dom.count('class="window-bar"') == 2  # the latest in two parts
    # The axis spans the afternoon of the data, not the year asked for: hours, not dates.
    ticks = [t.split("<")[0] for t in dom.split('text-anchor="middle">')[1:]]
    assert ticks[:3] == ["12:00", "12:30", "13:00"]
    # What it shows: the part announced in advance in its clause's blue, the extension in
    # the bank's red, the 12 000 failures as bars in the platform's purple.
    image = Image.open(shot)
    timeline = (0, 0, image.width, image.height)
    assert _has(image, CLAUSE_COLOURS[Clause.A16_1_A], timeline) > 200
    assert _has(image, CLAUSE_COLOURS[Clause.BANK], timeline) > 200
    assert _has(image, CLAUSE_COLOURS[Clause.A16_1_B], timeline) > 500
