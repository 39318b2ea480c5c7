"""Liability records held while the store cannot write survive a restart, in order, and
are appended once even when several processes take them back."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from essc_gateway.liability.model import Clause, HolderLink, LiabilityRecord
from essc_gateway.liability.pending import PendingRecords
from essc_gateway.store.base import StoreUnavailable
from essc_gateway.upstream.attempts import PlatformAttempt


def record(n: int) -> LiabilityRecord:
    return LiabilityRecord(
        seq=0,
        request_id=f"{n:032x}",
        trace_id="",
        bank_id="bank-a",
        rpc="Issue",
        at=datetime(2026, 11, 2, 9, n, tzinfo=UTC),
        arrived_at=datetime(2026, 11, 2, 9, n, tzinfo=UTC),
        status_code="UNAVAILABLE",
        reason="STORE_UNAVAILABLE",
        clause=Clause.BANK,
        evidence={"outcome": "NOT_SENT"},
        holder_token="t" * 64,
    )


def pending_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("ledger-pending.*.jsonl"))


class Ledger:
    """Appends by request id, once; fails with StoreUnavailable while `full`."""

    def __init__(self) -> None:
        self.records: list[LiabilityRecord] = []
        self.full = False

    async def append_if_absent(self, held: LiabilityRecord) -> bool:
        if self.full:
            raise StoreUnavailable("store write failed: SQLITE_FULL")
        if held.request_id in {r.request_id for r in self.records}:
            return False
        self.records.append(held)
        return True


async def test_held_records_are_taken_back_after_a_restart_and_appended_in_order(
    tmp_path: Path,
) -> None:
    before_restart = PendingRecords(tmp_path)
    for n in range(3):
        before_restart.hold(record(n))

    after_restart = PendingRecords(tmp_path)
    after_restart.load()
    assert len(after_restart) == 3
    ledger = Ledger()
    ledger.records.append(record(0))  # appended by another process before the crash
    assert await after_restart.flush(ledger.append_if_absent) == 3
    assert ledger.records == [record(0), record(1), record(2)]
    assert pending_files(tmp_path) == []  # nothing left to take back


async def test_a_flush_stops_at_the_first_failure_and_keeps_the_rest_on_disk(
    tmp_path: Path,
) -> None:
    pending = PendingRecords(tmp_path)
    for n in range(3):
        pending.hold(record(n))
    ledger = Ledger()
    appended = 0

    async def full_after_one(held: LiabilityRecord) -> bool:
        nonlocal appended
        if appended == 1:
            raise StoreUnavailable("store write failed: SQLITE_FULL")
        appended += 1
        return await ledger.append_if_absent(held)

    assert await pending.flush(full_after_one) == 1
    again = PendingRecords(tmp_path)
    again.load()
    assert len(again) == 2
    assert await again.flush(ledger.append_if_absent) == 2
    assert ledger.records == [record(0), record(1), record(2)]


async def test_a_dead_workers_file_is_taken_back_and_removed(tmp_path: Path) -> None:
    PendingRecords(tmp_path).hold(record(1))
    (own,) = pending_files(tmp_path)
    other = own.with_name("ledger-pending.99999999.jsonl")  # as a worker that died left it
    own.rename(other)
    taker = PendingRecords(tmp_path)
    taker.load()
    ledger = Ledger()
    assert await taker.flush(ledger.append_if_absent) == 1
    assert ledger.records == [record(1)]
    assert pending_files(tmp_path) == []


def test_a_held_record_keeps_all_its_evidence_through_the_file(tmp_path: Path) -> None:
    arrived = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    record = LiabilityRecord(
        seq=0,
        request_id="held-1",
        trace_id="ab" * 16,
        bank_id="bank-a",
        rpc="Verify",
        at=arrived + timedelta(seconds=2),
        arrived_at=arrived,
        deadline_at=arrived + timedelta(seconds=5),
        status_code="UNAVAILABLE",
        reason="MAINTENANCE_WINDOW",
        clause=Clause.A16_1_A,
        evidence={"window_id": "mw-1"},
        attempts=(PlatformAttempt("CheckRealName", arrived, 12.5, "UNAVAILABLE", "REJECTED"),),
        window_id="mw-1",
        window_version=3,
        holder_token="t" * 64,
    )
    PendingRecords(tmp_path).hold(record)
    taken_back = PendingRecords(tmp_path)
    taken_back.load()
    assert taken_back._held == [record]


def test_a_record_held_before_the_evidence_log_is_still_taken_back(tmp_path: Path) -> None:
    old = {
        "request_id": "old-1",
        "trace_id": "",
        "bank_id": "bank-a",
        "rpc": "Issue",
        "at": "2026-11-02T09:00:00+00:00",
        "status_code": "UNAVAILABLE",
        "reason": "STORE_UNAVAILABLE",
        "clause": "BANK",
        "evidence": {"outcome": "NOT_SENT"},
        "outage_id": None,
        "window_id": None,
        "incident_id": None,
        "holder_token": None,
    }
    (tmp_path / "ledger-pending.1.jsonl").write_text(json.dumps(old) + "\n")
    taken_back = PendingRecords(tmp_path)
    taken_back.load()
    assert len(taken_back) == 1
    [record] = taken_back._held
    assert (record.request_id, record.clause, record.arrival) == (
        "old-1",
        Clause.BANK,
        datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )


async def test_a_held_record_keeps_its_holder_link_outside_its_entry(tmp_path: Path) -> None:
    link = HolderLink("1.lookup-token", b"s" * 16)
    linked = replace(record(9), holder_token="ref", holder_link=link)
    PendingRecords(tmp_path).hold(linked)
    [line] = pending_files(tmp_path)[0].read_text().splitlines()
    assert json.loads(line)["holder_token"] == "ref"
    after_restart = PendingRecords(tmp_path)
    after_restart.load()
    appended = Ledger()
    await after_restart.flush(appended.append_if_absent)
    assert appended.records == [linked]
    assert appended.records[0].holder_link == link
