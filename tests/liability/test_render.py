"""Rendering liability reports and monthly statements: JSON, terminal table, HTML page."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from essc_gateway.domain.maintenance import MaintenanceWindow, WindowKind
from essc_gateway.liability.model import (
    Amendment,
    AmendmentCause,
    Clause,
    Complaint,
    Incident,
    IncidentKind,
    LiabilityRecord,
    LiabilityReport,
    MonthlyStatement,
    Outage,
    WindowPart,
)
from essc_gateway.liability.render import (
    CLAUSE_COLOURS,
    TABLE_WIDTH,
    report_to_html,
    report_to_json,
    report_to_table,
    statement_to_json,
    statement_to_table,
)

SINCE = datetime(2026, 11, 6, 8, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 6, 20, 0, tzinfo=UTC)  # 12 hours: 14:00 is the middle
HOSTILE = "<script>alert(1)</script>"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 6, hour, minute, tzinfo=UTC)


def record(seq: int, when: datetime, clause: Clause, reason: str, **refs: str) -> LiabilityRecord:
    return LiabilityRecord(
        seq=seq,
        request_id=f"req-{seq}",
        trace_id=f"{seq:032x}",
        bank_id="bank-a",
        rpc="Issue",
        at=when,
        status_code="UNAVAILABLE",
        reason=reason,
        clause=clause,
        evidence={"upstream_code": "UNAVAILABLE", "attempts": "3"},
        **refs,
    )


CHECKPOINT = (
    "essc-gateway/evidence\n7\nq83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n\n"
    "\u2014 essc-gateway/evidence AAAAAGZha2Ugc2lnbmF0dXJl\n"
)


@pytest.fixture
def report() -> LiabilityReport:
    outages = (
        Outage(
            outage_id="o-1",
            scope="IssueCard",
            started_at=at(14),
            ended_at=at(15, 30),
            reached=True,
            last_failure_at=at(15, 29),
            status_counts={"UNAVAILABLE": 5, "DEADLINE_EXCEEDED": 2},
            affected={"bank-a": 3, "bank-b": 4},
            clause=Clause.A16_1_B,
        ),
        Outage(
            outage_id="o-2",
            scope="VerifyIdentity",
            started_at=at(18),
            ended_at=None,
            reached=False,
            last_failure_at=at(19, 50),
            status_counts={"NOT_SENT": 9},
            affected={"bank-a": 1},
            clause=Clause.A16_1_D,
        ),
    )
    windows = (
        MaintenanceWindow(
            window_id="w-1",
            kind=WindowKind.BANK,
            starts_at=at(9),
            ends_at=at(10),
            rpcs=frozenset({"Issue", "Verify"}),
            reason="core banking upgrade",
            announced_at=at(8) - timedelta(days=3),
        ),
        MaintenanceWindow(
            window_id="w-2",
            kind=WindowKind.BANK,
            starts_at=at(11),
            ends_at=at(11, 30),
            rpcs=frozenset(),
            reason="emergency patch",
            announced_at=at(11, 10),
        ),
    )
    incidents = (
        Incident(
            incident_id="i-1",
            kind=IncidentKind.TYPHOON,
            starts_at=at(16),
            ends_at=at(17),
            declared_at=at(16, 5),
            description="Typhoon: data centre on generator",
        ),
    )
    records = (
        record(1, at(9, 15), Clause.A16_1_A, "MAINTENANCE_WINDOW", window_id="w-1"),
        record(2, at(11, 5), Clause.BANK, "MAINTENANCE_WINDOW", window_id="w-2"),
        record(3, at(12), Clause.A16_2, "FACTOR_REJECTED"),
        record(4, at(14, 30), Clause.A16_1_B, HOSTILE, outage_id="o-1"),
        record(5, at(16, 20), Clause.A16_1_C, "PLATFORM_UNAVAILABLE", incident_id="i-1"),
        record(6, at(18, 30), Clause.A16_1_D, "PLATFORM_UNREACHABLE", outage_id="o-2"),
        record(7, at(16, 40), Clause.A16_1_B, "PLATFORM_UNAVAILABLE"),
    )
    amended = Amendment(
        amendment_id="am-1",
        request_id="req-7",
        clause=Clause.A16_1_C,
        previous_clause=Clause.A16_1_B,
        cause=AmendmentCause.INCIDENT_DECLARED,
        incident_id="i-1",
        declared_by="duty-officer",
        declared_at=at(16, 50),
        amended_at=at(16, 50),
    )
    return LiabilityReport(
        generated_at=at(20, 1),
        since=SINCE,
        until=UNTIL,
        bank_id="bank-a",
        records=records,
        outages=outages,
        windows=windows,
        incidents=incidents,
        checkpoint=CHECKPOINT,
        complaint=Complaint(accepted_on=date(2026, 11, 6), due_on=date(2026, 11, 27)),
        totals=dict.fromkeys(Clause, 1),
        outage_minutes={Clause.A16_1_B: 90.25, Clause.A16_1_D: 120.0, Clause.A16_1_A: 60.0},
        amendments={"req-7": (amended,)},
        window_parts=(
            WindowPart("w-1", 1, at(9), at(10), Clause.A16_1_A),
            WindowPart("w-2", 1, at(11), at(11, 30), Clause.BANK),
        ),
    )


@pytest.fixture
def statement() -> MonthlyStatement:
    return MonthlyStatement(
        bank_id="bank-a",
        month="2026-11",
        generated_at=datetime(2026, 12, 1, 0, 5, tzinfo=UTC),
        requests=120_000,
        failed=37,
        availability=0.999875,
        failed_by_clause={Clause.A16_1_B: 20, Clause.BANK: 15, Clause.A16_2: 2},
        outage_minutes={Clause.A16_1_B: 42.5},
        checkpoint=CHECKPOINT,
    )


# ---------------------------------------------------------------- JSON


def test_json_has_exactly_the_documented_keys(report: LiabilityReport) -> None:
    document = json.loads(report_to_json(report))
    assert list(document) == [
        "generated_at", "since", "until", "bank_id", "records", "outages", "windows",
        "incidents", "checkpoint", "complaint", "totals", "outage_minutes", "amendments",
        "window_parts",
    ]  # fmt: skip
    assert list(document["records"][0]) == [
        "seq", "request_id", "trace_id", "bank_id", "rpc", "at", "status_code", "reason",
        "clause", "evidence", "outage_id", "window_id", "incident_id", "holder_token",
        "arrived_at", "deadline_at", "attempts", "window_version", "log_index",
        "standing_clause", "amendments",
    ]  # fmt: skip
    assert list(document["outages"][0]) == [
        "outage_id", "scope", "started_at", "ended_at", "reached", "last_failure_at",
        "status_counts", "affected", "clause",
    ]  # fmt: skip
    assert list(document["windows"][0]) == [
        "window_id", "kind", "starts_at", "ends_at", "rpcs", "reason", "announced_at",
        "amended_at", "cancelled_at", "version", "announcement",
    ]  # fmt: skip
    assert list(document["incidents"][0]) == [
        "incident_id", "kind", "starts_at", "ends_at", "declared_at", "description",
        "declared_by", "clause",
    ]  # fmt: skip
    assert list(document["totals"]) == [c.value for c in Clause]
    assert list(document["outage_minutes"]) == [c.value for c in Clause]


def test_json_round_trips_the_values(report: LiabilityReport) -> None:
    document = json.loads(report_to_json(report))
    assert document["since"] == "2026-11-06T08:00:00Z"
    assert document["until"] == "2026-11-06T20:00:00Z"
    assert document["checkpoint"] == CHECKPOINT
    assert document["complaint"] == {"accepted_on": "2026-11-06", "due_on": "2026-11-27"}
    assert document["totals"] == {c.value: 1 for c in Clause}
    assert document["outage_minutes"]["A16(1)(b)"] == 90.25
    assert document["outage_minutes"]["A16(1)(c)"] == 0.0
    first = document["records"][0]
    assert first["clause"] == "A16(1)(a)"
    assert first["at"] == "2026-11-06T09:15:00Z"
    assert first["evidence"] == {"attempts": "3", "upstream_code": "UNAVAILABLE"}
    assert first["window_id"] == "w-1"
    assert first["outage_id"] is None
    assert [r["seq"] for r in document["records"]] == [1, 2, 3, 4, 5, 6, 7]
    last = document["records"][6]
    assert (last["clause"], last["standing_clause"]) == ("A16(1)(b)", "A16(1)(c)")
    assert last["amendments"][0]["incident_id"] == "i-1"
    assert last["amendments"][0]["declared_by"] == "duty-officer"
    assert document["records"][3]["reason"] == HOSTILE
    ongoing = document["outages"][1]
    assert ongoing["ended_at"] is None
    assert ongoing["reached"] is False
    assert ongoing["clause"] == "A16(1)(d)"
    assert document["outages"][0]["status_counts"] == {"DEADLINE_EXCEEDED": 2, "UNAVAILABLE": 5}
    assert [p["clause"] for p in document["window_parts"]] == ["A16(1)(a)", "BANK"]
    assert document["windows"][0]["rpcs"] == ["Issue", "Verify"]
    assert document["incidents"][0]["clause"] == "A16(1)(c)"


def test_a_banks_report_never_shows_another_banks_count(report: LiabilityReport) -> None:
    assert json.loads(report_to_json(report))["outages"][0]["affected"] == {"bank-a": 3}
    everyone = json.loads(report_to_json(replace(report, bank_id=None)))
    assert everyone["outages"][0]["affected"] == {"bank-a": 3, "bank-b": 4}


def test_json_times_are_utc_and_naive_times_are_refused(report: LiabilityReport) -> None:
    beijing = timezone(timedelta(hours=8))
    shifted = replace(report, generated_at=datetime(2026, 11, 7, 4, 1, tzinfo=beijing))
    assert json.loads(report_to_json(shifted))["generated_at"] == "2026-11-06T20:01:00Z"
    with pytest.raises(ValueError, match="naive"):
        report_to_json(replace(report, since=datetime(2026, 11, 6, 8)))


# ---------------------------------------------------------------- terminal table


def cells(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in {"W", "F"} else 1 for c in line)


def test_table_has_a_line_per_record_with_its_clause_and_the_totals(
    report: LiabilityReport,
) -> None:
    lines = report_to_table(report).splitlines()
    assert any("bank-a" in line for line in lines[:2])
    assert any("size 7, root q83v" in line for line in lines[:5])
    assert any("due 2026-11-27" in line for line in lines[:6])
    for r in report.records:
        (line,) = [ln for ln in lines if ln.startswith(r.at.strftime("%Y-%m-%d %H:%M:%S"))]
        amended = report.amendments.get(r.request_id)
        shown = f"{amended[-1].clause.value}*" if amended else r.clause.value
        assert line.split()[-2 if r.outage_id or r.window_id or r.incident_id else -1] == shown
    assert "o:o-1" in next(ln for ln in lines if ln.startswith("2026-11-06 14:30"))
    totals = {ln.split()[0]: ln.split()[1:3] for ln in lines if ln.split()[:1] != []}
    assert totals["A16(1)(b)"] == ["1", "90.2"]  # 90.25 rounds half to even
    assert totals["A16(1)(c)"] == ["1", "0.0"]
    assert totals["Total"] == ["6"]  # the fixture's totals
    assert all(cells(line) <= TABLE_WIDTH for line in lines)


def test_table_cuts_long_and_wide_fields_and_drops_control_characters(
    report: LiabilityReport,
) -> None:
    long_reason = "平台返回错误，请稍后重试" * 5 + "\x1b[2J\nFORGED LINE"
    noisy = replace(report, records=(replace(report.records[0], reason=long_reason),))
    text = report_to_table(noisy)
    assert "\x1b" not in text
    assert "\nFORGED" not in text
    line = next(ln for ln in text.splitlines() if ln.startswith("2026-11-06 09:15"))
    assert "…" in line
    assert cells(line) <= TABLE_WIDTH
    # The clause column still lines up behind the cut reason.
    header = next(ln for ln in text.splitlines() if ln.startswith("Time (UTC)"))
    assert cells(line[: line.index("A16(1)(a)")]) == header.index("Clause")


def test_an_empty_report_says_so(report: LiabilityReport) -> None:
    assert "(no failed requests)" in report_to_table(replace(report, records=(), totals={}))


# ---------------------------------------------------------------- HTML


class Page(HTMLParser):
    """Collects the elements and checks that every element is closed in order."""

    VOID = frozenset({"meta", "br", "img", "hr", "input", "link"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        self.errors += [f"unclosed <{tag}>" for tag in self.open]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")

    def with_class(self, name: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.elements if name in (a.get("class") or "").split()]


def number(attrs: dict[str, str | None], name: str) -> float:
    value = attrs[name]
    assert value is not None
    return float(value)


def test_html_is_well_formed_and_self_contained(report: LiabilityReport) -> None:
    text = report_to_html(report)
    page = Page(text)
    assert page.errors == []
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") == 1
    tags = {tag for tag, _ in page.elements}
    assert not tags & {"script", "link", "img", "iframe", "object"}
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text


def test_html_has_a_bar_per_outage_and_window_and_a_mark_per_record(
    report: LiabilityReport,
) -> None:
    page = Page(report_to_html(report))
    assert [a["data-ref"] for a in page.with_class("outage-bar")] == ["o-1", "o-2"]
    assert [a["data-ref"] for a in page.with_class("window-bar")] == ["w-1/v1", "w-2/v1"]
    assert [a["data-ref"] for a in page.with_class("incident-bar")] == ["i-1"]
    assert len(page.with_class("record-mark")) == len(report.records)
    assert len(page.with_class("record-row")) == len(report.records)


def test_html_places_bars_in_proportion_to_the_axis(report: LiabilityReport) -> None:
    page = Page(report_to_html(report))
    (axis,) = page.with_class("axis")
    left, right = number(axis, "x1"), number(axis, "x2")
    # The axis spans the data (09:00 to 19:50), 3 % wider, within the report's range.
    start, end = at(9) - timedelta(minutes=19.5), UNTIL

    def x(moment: datetime) -> float:
        return left + (right - left) * (moment - start) / (end - start)

    bars = {a["data-ref"]: a for a in page.with_class("outage-bar")}
    assert number(bars["o-1"], "x") == pytest.approx(x(at(14)), abs=0.1)
    assert number(bars["o-1"], "width") == pytest.approx(x(at(15, 30)) - x(at(14)), abs=0.1)
    # o-2 is still on: its bar runs to the end of the range.
    finish = number(bars["o-2"], "x") + number(bars["o-2"], "width")
    assert finish == pytest.approx(right, abs=0.1)
    marks = page.with_class("record-mark")
    assert number(marks[0], "cx") == pytest.approx(x(at(9, 15)), abs=0.1)


def test_html_escapes_every_text(report: LiabilityReport) -> None:
    hostile = replace(
        report,
        bank_id=HOSTILE,
        windows=(replace(report.windows[0], reason=HOSTILE),),
        incidents=(replace(report.incidents[0], description='"><svg onload=alert(1)>'),),
    )
    text = report_to_html(hostile)
    assert "<script" not in text
    assert "onload=alert" not in text.replace("onload=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("<svg") == 1
    assert Page(text).errors == []


def test_html_uses_one_colour_per_clause_and_marks_late_windows(
    report: LiabilityReport,
) -> None:
    text = report_to_html(report)
    page = Page(text)
    colours = {a["fill"] for a in page.with_class("record-mark")}
    assert colours == set(CLAUSE_COLOURS.values())
    assert len(set(CLAUSE_COLOURS.values())) == len(Clause)
    for clause, colour in CLAUSE_COLOURS.items():
        assert f"border-left-color:{colour}" in text  # summary card
        assert f'background:{colour}">{clause.value}<' in text.replace("&#x27;", "'")  # badge
    assert "w-1 v1 · announced in advance" in text
    assert "w-2 v1 · not in advance" in text
    assert "Complaint due" in text
    assert "2026-11-27" in text
    assert "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=" in text
    assert "A16(1)(b) → A16(1)(c): incident i-1 declared by duty-officer" in text


def test_html_refuses_an_empty_range(report: LiabilityReport) -> None:
    with pytest.raises(ValueError, match="after"):
        report_to_html(replace(report, until=report.since))


# ---------------------------------------------------------------- monthly statement


def test_statement_json_round_trips(statement: MonthlyStatement) -> None:
    document = json.loads(statement_to_json(statement))
    assert list(document) == [
        "bank_id", "month", "generated_at", "requests", "failed", "availability",
        "failed_by_clause", "outage_minutes", "checkpoint",
    ]  # fmt: skip
    assert document["generated_at"] == "2026-12-01T00:05:00Z"
    assert document["availability"] == 0.999875
    assert document["requests"] == 120_000
    assert document["failed_by_clause"] == {
        "A16(1)(a)": 0, "A16(1)(b)": 20, "A16(1)(c)": 0, "A16(1)(d)": 0, "A16(2)": 2, "BANK": 15,
    }  # fmt: skip
    assert document["outage_minutes"]["A16(1)(b)"] == 42.5


def test_statement_table(statement: MonthlyStatement) -> None:
    text = statement_to_table(statement)
    assert "bank bank-a, month 2026-11" in text
    assert "Available  99.9875 %" in text
    rows = {ln.split()[0]: ln.split()[1:3] for ln in text.splitlines() if ln.strip()}
    assert rows["A16(1)(b)"] == ["20", "42.5"]
    assert rows["BANK"] == ["15", "0.0"]
    assert rows["Total"] == ["37"]
    assert all(len(line) <= TABLE_WIDTH for line in text.splitlines())


def test_html_draws_every_version_of_an_amended_window(report: LiabilityReport) -> None:
    first = report.windows[0]
    extended = replace(first, ends_at=at(10, 30), amended_at=at(9, 30), version=2)
    amended = replace(
        report,
        windows=(first, extended, report.windows[1]),
        window_parts=(
            WindowPart("w-1", 2, at(9), at(10), Clause.A16_1_A),
            WindowPart("w-1", 2, at(10), at(10, 30), Clause.BANK),
            report.window_parts[1],
        ),
    )
    page = Page(report_to_html(amended))
    assert [a["data-ref"] for a in page.with_class("window-version-bar")] == ["w-1/v1"]
    parts = [(a["data-ref"], a["fill"]) for a in page.with_class("window-bar")]
    assert parts == [
        ("w-1/v2", CLAUSE_COLOURS[Clause.A16_1_A]),
        ("w-1/v2", CLAUSE_COLOURS[Clause.BANK]),
        ("w-2/v1", CLAUSE_COLOURS[Clause.BANK]),
    ]


def test_html_counts_failures_per_bin_past_a_thousand(report: LiabilityReport) -> None:
    many = tuple(
        record(n, at(9) + timedelta(seconds=3 * n), Clause.A16_1_B, "PLATFORM_UNAVAILABLE")
        for n in range(12_000)
    )
    text = report_to_html(replace(report, records=many, amendments={}))
    page = Page(text)
    bins = page.with_class("record-bin")
    assert page.with_class("record-mark") == []
    assert 0 < len(bins) <= 160
    assert sum(int(str(b["data-count"])) for b in bins) == 12_000
    assert len(page.with_class("record-row")) == 2000  # the table is cut; JSON has them all
    assert "The first 2000 of 12000 failed requests" in text
    assert len(text) < 3_000_000
