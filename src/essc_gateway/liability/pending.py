"""Liability records that could not be appended because the store could not write (disk
full, read-only file system): held in order, also in a file beside the store when it can be
written, and appended once the store writes again (or at the next start), so that the
failure is still evidenced (A16). Their chain position is given when they are appended;
their content, time and request id are the ones the bank was answered with."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from essc_gateway.liability.model import Clause, LiabilityRecord
from essc_gateway.store.base import StoreUnavailable

log = logging.getLogger("essc_gateway.ledger")

MAX_HELD = 100_000
"""Records held at most; beyond, the oldest are kept and the rest counted as lost."""


def _to_json(record: LiabilityRecord) -> str:
    return json.dumps(
        {
            "request_id": record.request_id,
            "trace_id": record.trace_id,
            "bank_id": record.bank_id,
            "rpc": record.rpc,
            "at": record.at.isoformat(),
            "status_code": record.status_code,
            "reason": record.reason,
            "clause": record.clause.value,
            "evidence": dict(record.evidence),
            "outage_id": record.outage_id,
            "window_id": record.window_id,
            "incident_id": record.incident_id,
            "holder_token": record.holder_token,
        },
        sort_keys=True,
    )


def _from_json(line: str) -> LiabilityRecord:
    data: dict[str, Any] = json.loads(line)
    return LiabilityRecord(
        seq=0,
        request_id=data["request_id"],
        trace_id=data["trace_id"],
        bank_id=data["bank_id"],
        rpc=data["rpc"],
        at=datetime.fromisoformat(data["at"]),
        status_code=data["status_code"],
        reason=data["reason"],
        clause=Clause(data["clause"]),
        evidence=data["evidence"],
        outage_id=data["outage_id"],
        window_id=data["window_id"],
        incident_id=data["incident_id"],
        holder_token=data["holder_token"],
    )


class PendingRecords:
    """Records waiting for the store, in the order they were made."""

    def __init__(self, file: Path | None) -> None:
        self._file = file
        self._held: list[LiabilityRecord] = []
        self._lost = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, record: LiabilityRecord) -> None:
        if len(self._held) >= MAX_HELD:
            self._lost += 1
            log.error("liability record lost: %d held already", MAX_HELD)
            return
        self._held.append(record)
        log.warning("liability record held until the store writes again (%d)", len(self._held))
        if self._file is not None:
            try:
                with self._file.open("a") as out:
                    out.write(_to_json(record) + "\n")
            except OSError as error:  # likely the same full disk: memory holds it
                log.warning("pending liability file not written: %s", type(error).__name__)

    def load(self) -> None:
        """Takes back records a previous run could not append."""
        if self._file is None or not self._file.exists():
            return
        known = {r.request_id for r in self._held}
        for line in self._file.read_text().splitlines():
            if line.strip():
                record = _from_json(line)
                if record.request_id not in known:
                    self._held.append(record)
                    known.add(record.request_id)

    async def flush(self, append: Callable[[LiabilityRecord], Awaitable[object]]) -> int:
        """Appends held records in order until the store fails again; returns how many."""
        done = 0
        try:
            while self._held:
                await append(self._held[0])
                self._held.pop(0)
                done += 1
        except StoreUnavailable:
            pass
        if done:
            log.warning("%d held liability records appended", done)
            self._rewrite()
        return done

    def _rewrite(self) -> None:
        if self._file is None:
            return
        try:
            if self._held:
                self._file.write_text("".join(_to_json(r) + "\n" for r in self._held))
            else:
                self._file.unlink(missing_ok=True)
        except OSError as error:
            log.warning("pending liability file not rewritten: %s", type(error).__name__)
