"""The harness against the real gateway and platform: tiny loads, well-formed reports."""

from __future__ import annotations

import csv
import dataclasses
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.loadtest import LoadOptions, LoadResult, run_load
from essc_gateway.loadtest.report import CSV_COLUMNS
from essc_gateway.simplatform import SimulatedPlatform
from tests.conftest import GatewayUnderTest

LATENCY_KEYS = ["min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]
ORDERED = ["min", "p50", "p90", "p95", "p99", "p99.9", "max"]


class _TagChecker(HTMLParser):
    """Counts elements and checks that every non-void element is closed in order."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> without an open element"
        assert self.open.pop() == tag


def check_summary(summary: dict[str, Any]) -> None:
    assert summary["count"] == summary["ok"] + summary["errors"]
    assert sum(summary["status_codes"].values()) == summary["count"]
    assert summary["status_codes"].get("OK", 0) == summary["ok"]
    latency = summary["latency_ms"]
    assert list(latency) == LATENCY_KEYS
    values = [latency[k] for k in ORDERED]
    assert values == sorted(values)
    assert latency["min"] <= latency["mean"] <= latency["max"]
    assert sum(b["count"] for b in summary["histogram"]) == summary["count"]
    for bucket in summary["histogram"]:
        assert bucket["low_ms"] < bucket["high_ms"]
    assert summary["rps"] > 0


def check_reports(result: LoadResult, expected: int) -> dict[str, Any]:
    options = result.options
    assert options.json_path is not None
    assert options.csv_path is not None
    assert options.html_path is not None
    report: dict[str, Any] = json.loads(options.json_path.read_text())
    assert set(report) >= {"options", "started_at", "setup", "overall", "rpcs", "timeline"}
    overall = report["overall"]
    assert overall["count"] == expected == len(result.samples)
    check_summary(overall)
    for summary in report["rpcs"].values():
        check_summary(summary)
    assert sum(s["count"] for s in report["rpcs"].values()) == expected
    assert sum(s["count"] for s in report["timeline"]) == expected

    with options.csv_path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["rpc"] for r in rows] == [*report["rpcs"], "overall"]
    assert int(rows[-1]["count"]) == expected
    assert sum(int(r["count"]) for r in rows[:-1]) == expected

    checker = _TagChecker()
    checker.feed(options.html_path.read_text())
    checker.close()
    assert checker.open == []
    assert checker.seen["svg"] == 2
    assert checker.seen.get("script", 0) == 0
    return report


async def test_closed_loop_in_two_worker_processes(
    base_options: LoadOptions, capsys: pytest.CaptureFixture[str]
) -> None:
    options = dataclasses.replace(base_options, workers=2, count=50, progress=True)

    result = await run_load(options)

    report = check_reports(result, 50)
    assert set(report["rpcs"]) == {"verify", "issue", "authenticate", "query"}
    assert report["setup"]["holders"] == options.holders
    assert "measured phase" in capsys.readouterr().err


async def test_open_loop_in_a_worker_process(base_options: LoadOptions) -> None:
    options = dataclasses.replace(
        base_options, workers=1, mode="open", rate=200.0, count=30, mix={"verify": 1, "query": 1}
    )

    result = await run_load(options)

    report = check_reports(result, 30)
    assert set(report["rpcs"]) <= {"verify", "query"}
    # On the timetable: request i was due at i / rate, whenever it was sent.
    assert sorted(result.samples.starts) == pytest.approx([i / 200.0 for i in range(30)])


async def test_duration_mode_in_process(base_options: LoadOptions) -> None:
    options = dataclasses.replace(
        base_options, count=None, duration=0.5, mix={"verify": 1}, holders=0
    )

    result = await run_load(options)

    check_reports(result, len(result.samples))
    assert result.overall.count > 0
    assert max(result.samples.starts) < 0.5


async def test_fault_scenario_is_applied_and_cleared(
    base_options: LoadOptions,
    platform: SimulatedPlatform,
    gw: GatewayUnderTest,
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps(
            {
                "seed": 1,
                "rules": [
                    {
                        "method": "/essc.platform.v1.IdentityService/CheckRealName",
                        "error": {"rates": [{"code": "PERMISSION_DENIED", "rate": 1.0}]},
                    }
                ],
            }
        )
    )
    options = dataclasses.replace(
        base_options,
        mix={"verify": 1},
        holders=0,
        count=6,
        concurrency=2,
        scenario=scenario,
        control_address=platform.control_address,
    )

    result = await run_load(options)

    check_reports(result, 6)
    assert result.overall.errors == 6
    status = await gw.control.GetFaultStatus(ppb.GetFaultStatusRequest())
    assert not status.HasField("scenario")


# Issue uses up people (one live e-SSC each): however fast the target answers, a load never
# issues anyone twice; it ends early once its people are used up (issue 16).


async def test_issue_takes_fresh_applicants_and_ends_when_they_run_out(
    base_options: LoadOptions,
) -> None:
    # A closed loop of a minute that only six people can feed: it ends after six Issues,
    # two prepared in set-up and four verified when needed, with nobody issued twice.
    options = dataclasses.replace(
        base_options, mix={"issue": 1}, count=None, duration=60.0, applicants=2, people=6
    )

    result = await run_load(options)

    assert result.overall.status_codes == {"OK": 6}
    assert result.applicants.to_json() == {
        "issued_again": 0,
        "verified_during_load": 4,
        "exhausted": True,
    }
    assert check_reports(result, 6)["applicants"]["exhausted"] is True


async def test_open_loop_issue_stops_its_timetable_when_applicants_run_out(
    base_options: LoadOptions,
) -> None:
    options = dataclasses.replace(
        base_options, mix={"issue": 1}, mode="open", rate=100.0, count=50, applicants=3, people=3
    )

    result = await run_load(options)

    assert result.overall.status_codes == {"OK": 3}
    assert result.applicants.exhausted
    assert result.applicants.verified_during_load == 0


async def test_people_issued_by_an_earlier_run_are_counted_as_issued_again(
    base_options: LoadOptions,
) -> None:
    first = dataclasses.replace(base_options, mix={"issue": 1}, count=3, applicants=3, people=3)
    await run_load(first)

    # The same people again: the gateway answers ALREADY_HELD (still OK), and the report
    # counts those answers instead of hiding them.
    again = await run_load(first)

    assert again.overall.status_codes == {"OK": 3}
    assert again.applicants.issued_again == 3
    assert not again.applicants.exhausted
