"""Liability records held while the store cannot write survive a restart, in order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from essc_gateway.liability.model import Clause, LiabilityRecord
from essc_gateway.liability.pending import PendingRecords
from essc_gateway.store.base import StoreUnavailable


def record(n: int) -> LiabilityRecord:
    return LiabilityRecord(
        seq=0,
        request_id=f"{n:032x}",
        trace_id="",
        bank_id="bank-a",
        rpc="Issue",
        at=datetime(2026, 11, 2, 9, n, tzinfo=UTC),
        status_code="UNAVAILABLE",
        reason="STORE_UNAVAILABLE",
        clause=Clause.BANK,
        evidence={"outcome": "NOT_SENT"},
        holder_token="t" * 64,
    )


async def test_held_records_are_taken_back_after_a_restart_and_appended_in_order(
    tmp_path: Path,
) -> None:
    file = tmp_path / "ledger-pending.jsonl"
    before_restart = PendingRecords(file)
    for n in range(3):
        before_restart.hold(record(n))

    after_restart = PendingRecords(file)
    after_restart.load()
    assert len(after_restart) == 3
    appended: list[LiabilityRecord] = []

    async def append_until_full(held: LiabilityRecord) -> None:
        if len(appended) == 2:
            raise StoreUnavailable("store write failed: SQLITE_FULL")
        appended.append(held)

    assert await after_restart.flush(append_until_full) == 2
    assert appended == [record(0), record(1)]
    # What is still held is what the file keeps.
    again = PendingRecords(file)
    again.load()
    assert len(again) == 1

    async def append(held: LiabilityRecord) -> None:
        appended.append(held)

    assert await again.flush(append) == 1
    assert appended[-1] == record(2)
    assert not file.exists()
