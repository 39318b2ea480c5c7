"""The classification rules one by one, on a real store, with no network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from essc_gateway.errors import ErrorReason, GatewayError, PlatformFacts
from essc_gateway.liability.classify import Classifier
from essc_gateway.liability.incidents import IncidentBook
from essc_gateway.liability.model import Clause, IncidentKind, Outage
from essc_gateway.liability.outages import OutageTracker
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.store.sqlite import SqliteStore
from essc_gateway.testing import FakeClock

_FACT_KEYS = frozenset({"outcome", "attempts", "platform_reached", "cause", "circuit_forced"})


def _error(reason: str, metadata: dict[str, str]) -> GatewayError:
    """The error the case describes: its platform facts typed (as the resilient caller sets
    them), the rest as plain metadata."""
    error = GatewayError(
        "failed",
        reason=ErrorReason(reason),
        metadata={k: v for k, v in metadata.items() if k not in _FACT_KEYS},
    )
    if _FACT_KEYS & metadata.keys():
        error.platform = PlatformFacts.from_evidence(metadata)
    return error


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "rules.db")
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def incidents(store: SqliteStore, clock: FakeClock) -> IncidentBook:
    return IncidentBook(store, clock)


@pytest.fixture
def classifier(store: SqliteStore, clock: FakeClock, incidents: IncidentBook) -> Classifier:
    calendar = MaintenanceCalendar(store, clock, timedelta(minutes=2), timedelta(hours=1))
    return Classifier(calendar, incidents, OutageTracker(store, clock))


@pytest.mark.parametrize(
    ("code", "reason", "metadata", "clause"),
    [
        # The bank's own deadline left no time: not the platform's fault.
        (
            "DEADLINE_EXCEEDED",
            "PLATFORM_TIMEOUT",
            {"outcome": "NOT_SENT", "cause": "caller_deadline"},
            Clause.BANK,
        ),
        # Sent and never answered: the platform held it (A16(1)(b)), not a third party.
        (
            "UNAVAILABLE",
            "PLATFORM_UNAVAILABLE",
            {"outcome": "IN_DOUBT", "platform_reached": "unknown"},
            Clause.A16_1_B,
        ),
        (
            "UNAVAILABLE",
            "PLATFORM_UNAVAILABLE",
            {"outcome": "NOT_SENT", "platform_reached": "false"},
            Clause.A16_1_D,
        ),
        # A request the platform found malformed is a gateway bug.
        ("INTERNAL", "INTERNAL", {}, Clause.BANK),
        ("PERMISSION_DENIED", "PLATFORM_REFUSED", {}, Clause.BANK),
        # A circuit held open by an operator with no outage behind it, vs. one the
        # platform's failures opened.
        ("UNAVAILABLE", "PLATFORM_CIRCUIT_OPEN", {"circuit_forced": "true"}, Clause.BANK),
        ("UNAVAILABLE", "PLATFORM_CIRCUIT_OPEN", {"circuit_forced": "false"}, Clause.A16_1_B),
        ("UNAUTHENTICATED", "FACTOR_REJECTED", {}, Clause.A16_2),
        # A16(2) needs the holder's own error: a lockout their wrong factors caused, not a
        # check refused because others of the holder were in progress.
        (
            "RESOURCE_EXHAUSTED",
            "HOLDER_LOCKED_OUT",
            {"locked_until": "2026-11-02T09:15:00+00:00"},
            Clause.A16_2,
        ),
        ("RESOURCE_EXHAUSTED", "HOLDER_LOCKED_OUT", {}, Clause.BANK),
        (
            "RESOURCE_EXHAUSTED",
            "FACTOR_CHECKS_IN_PROGRESS",
            {"in_progress": "true", "consecutive_failures": "0"},
            Clause.BANK,
        ),
        ("RESOURCE_EXHAUSTED", "OVERLOADED", {}, Clause.BANK),
        # A guardian's wrong phone is the applicant's own fault; other refusals are not.
        (
            "FAILED_PRECONDITION",
            "GUARDIAN_NOT_VERIFIED",
            {"check_reason": "PHONE_MISMATCH"},
            Clause.A16_2,
        ),
        (
            "FAILED_PRECONDITION",
            "GUARDIAN_NOT_VERIFIED",
            {"check_reason": "NAME_MISMATCH"},
            Clause.BANK,
        ),
    ],
)
def test_each_rule(
    classifier: Classifier,
    clock: FakeClock,
    code: str,
    reason: str,
    metadata: dict[str, str],
    clause: Clause,
) -> None:
    verdict = classifier.classify("Verify", clock.now(), code, _error(reason, metadata))
    assert verdict.clause is clause


async def test_a16_1_c_moves_platform_failures_but_not_the_gateways_own(
    classifier: Classifier, incidents: IncidentBook, clock: FakeClock
) -> None:
    now = clock.now()
    await incidents.declare(IncidentKind.FLOOD, now, now + timedelta(hours=1), "flood", "op")
    platform = classifier.classify("Verify", now, "UNAVAILABLE", _error("PLATFORM_UNAVAILABLE", {}))
    assert platform.clause is Clause.A16_1_C
    assert (
        classifier.classify("Verify", now, "INTERNAL", _error("INTERNAL", {})).clause is Clause.BANK
    )


async def test_an_incident_covers_a_request_by_its_arrival_not_its_answer(
    classifier: Classifier, incidents: IncidentBook, clock: FakeClock
) -> None:
    now = clock.now()
    await incidents.declare(IncidentKind.TYPHOON, now, now + timedelta(minutes=5), "typhoon", "op")
    # Arrived in the incident's last second, answered after it ended (a long retry-after).
    arrived = now + timedelta(minutes=5) - timedelta(seconds=1)
    clock.advance(timedelta(minutes=5, seconds=8))
    verdict = classifier.classify(
        "Verify", arrived, "UNAVAILABLE", _error("PLATFORM_UNAVAILABLE", {})
    )
    assert verdict.clause is Clause.A16_1_C
    after = classifier.classify(
        "Verify", clock.now(), "UNAVAILABLE", _error("PLATFORM_UNAVAILABLE", {})
    )
    assert after.clause is not Clause.A16_1_C


async def test_outages_left_open_by_a_stopped_gateway_end_at_their_last_failure(
    store: SqliteStore, clock: FakeClock
) -> None:
    now = clock.now()
    open_one = Outage(
        "out-1",
        "IssueCard",
        now,
        None,
        True,
        now + timedelta(minutes=3),
        {"UNAVAILABLE": 9},
        {"bank-a": 4},
        Clause.A16_1_B,
    )
    await store.open_outage(open_one, "replica-gone")
    await OutageTracker(store, clock).close_stale()
    [closed] = await store.outages_between(now, now + timedelta(days=1))
    assert closed.ended_at == now + timedelta(minutes=3)


async def test_report_bounds_in_another_time_zone_select_the_same_instants(
    store: SqliteStore, clock: FakeClock
) -> None:
    now = clock.now()  # 09:00 UTC
    outage = Outage(
        "out-2", "GetCard", now, now + timedelta(minutes=1), True, now, {}, {}, Clause.A16_1_B
    )
    await store.open_outage(outage, "replica-1")
    await store.close_outage("out-2", now + timedelta(minutes=1))
    beijing = timezone(timedelta(hours=8))
    since = datetime(2026, 11, 2, 16, 30, tzinfo=beijing)  # 08:30 UTC
    until = datetime(2026, 11, 2, 17, 30, tzinfo=beijing)  # 09:30 UTC
    assert [o.outage_id for o in await store.outages_between(since, until)] == ["out-2"]
    assert since.astimezone(UTC) < now
