"""Complaint due dates follow China's official calendar: public holidays and make-up working
days (调休) (A15; issue 10, defect 13)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.config import ConfigError, load_config
from essc_gateway.liability.work_calendar import (
    CalendarFileError,
    CalendarYearUnknown,
    WorkCalendar,
)
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import rich, ts


@pytest.mark.parametrize(
    ("accepted", "due"),
    [
        # National Day and Mid-Autumn (1-8 October), Saturday 10 October worked.
        (date(2026, 9, 18), date(2026, 10, 15)),
        # Spring Festival (15-23 February), Saturdays 14 and 28 February worked.
        (date(2026, 2, 6), date(2026, 3, 5)),
        # Labour Day (1-5 May), Saturday 9 May worked.
        (date(2026, 4, 24), date(2026, 5, 19)),
        # No holiday in between: 15 weekdays.
        (date(2026, 11, 6), date(2026, 11, 27)),
    ],
)
def test_a15_due_dates_follow_the_official_calendar(accepted: date, due: date) -> None:
    assert WorkCalendar.official().complaint_due(accepted) == due


def test_a_deadline_in_a_year_not_yet_published_is_refused_not_guessed() -> None:
    with pytest.raises(CalendarYearUnknown, match="2027"):
        WorkCalendar.official().complaint_due(date(2026, 12, 20))


def test_an_operator_supplied_year_fills_the_gap(tmp_path: Path) -> None:
    supplement = tmp_path / "calendar.json"
    supplement.write_text(json.dumps({"2027": {"holidays": ["2027-01-01"], "workdays": []}}))

    calendar = WorkCalendar.official(supplement)

    # 20 Dec 2026 (Sunday) + 15 working days, New Year's Day off: Monday 11 January 2027.
    assert calendar.complaint_due(date(2026, 12, 20)) == date(2027, 1, 11)
    assert calendar.complaint_due(date(2026, 9, 18)) == date(2026, 10, 15)  # 2026 unchanged


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps(["2027"]),
        json.dumps({"27": {"holidays": []}}),
        json.dumps({"2027": {"holidays": ["2027-13-01"]}}),
        json.dumps({"2027": {"holidays": ["2028-01-01"]}}),
        json.dumps({"2027": {"holiday": []}}),
        json.dumps({"2027": {"holidays": ["2027-01-02"], "workdays": ["2027-01-02"]}}),
    ],
)
def test_a_malformed_calendar_file_is_refused_by_configuration(
    tmp_path: Path, content: str
) -> None:
    supplement = tmp_path / "calendar.json"
    supplement.write_text(content)
    with pytest.raises(CalendarFileError):
        WorkCalendar.official(supplement)
    environment = {
        "ESSC_ROOT_KEY_FILE": str(tmp_path / "root.key"),
        "ESSC_WORK_CALENDAR": str(supplement),
    }
    with pytest.raises(ConfigError, match="ESSC_WORK_CALENDAR"):
        load_config(environment)


async def test_a_complaint_report_beyond_the_known_years_is_a_failed_precondition(
    gw: GatewayUnderTest, clock: FakeClock
) -> None:
    now = clock.now()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.operator.GetLiabilityReport(
            opb.GetLiabilityReportRequest(
                since=ts(now - timedelta(days=1)),
                until=ts(now + timedelta(days=1)),
                complaint_accepted_on="2026-12-20",
                format=opb.REPORT_FORMAT_JSON,
            ),
            metadata=gw.ops,
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich(raised.value).reason == "CALENDAR_YEAR_UNKNOWN"
