"""Liability records that could not be appended because the store could not write (disk
full, read-only file system): held in order, also in a file beside the store when it can be
written, and appended once the store writes again (or at the next start), so that the
failure is still evidenced (A16). Their chain position is given when they are appended;
their content, time and request id are the ones the bank was answered with."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from essc_gateway.evidence.entries import parse, record_entry, record_from_entry
from essc_gateway.liability.model import HolderLink, LiabilityRecord
from essc_gateway.store.base import StoreUnavailable

log = logging.getLogger("essc_gateway.ledger")

MAX_HELD = 100_000
"""Records held at most per process; beyond, the oldest are kept and the rest logged lost."""
FILE_PREFIX = "ledger-pending."
FILE_SUFFIX = ".jsonl"


_LINK = "holder_link"
"""Beside the entry's fields in a held line: the link is stored with the record, not logged."""


def _to_json(record: LiabilityRecord) -> str:
    """The record as its log entry will hold it (every field: arrival, deadline, attempts,
    the window version), and its holder link, one line."""
    if record.holder_link is None:
        return record_entry(record).body.decode()
    entry = json.loads(record_entry(record).body)
    link = record.holder_link
    entry[_LINK] = {"lookup_token": link.lookup_token, "salt": link.salt.hex()}
    return json.dumps(entry, ensure_ascii=False)


def _from_json(line: str) -> LiabilityRecord:
    data = json.loads(line)
    if "kind" not in data:  # held by a gateway before the evidence log
        data = {
            **data,
            "kind": "LIABILITY_RECORD",
            "arrived_at": data["at"],
            "answered_at": data["at"],
            "deadline_at": None,
            "attempts": [],
            "window_version": None,
        }
    link = data.pop(_LINK, None)
    _, fields = parse(json.dumps(data).encode())
    record = record_from_entry(fields)
    if link is None:
        return record
    return replace(
        record, holder_link=HolderLink(str(link["lookup_token"]), bytes.fromhex(link["salt"]))
    )


class PendingRecords:
    """Records waiting for the store, in the order they were made.

    Each process keeps its own file (`directory/ledger-pending.<pid>.jsonl`), so that workers
    sharing a store never rewrite each other's; at start a process takes back every such file
    it finds (its own from an earlier run, or a worker's that died), and appends are
    idempotent by request id, so a record taken back twice is appended once."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._file = (
            None if directory is None else directory / f"{FILE_PREFIX}{os.getpid()}{FILE_SUFFIX}"
        )
        self._adopted: set[Path] = set()
        self._held: list[LiabilityRecord] = []
        self._flushing = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, record: LiabilityRecord) -> None:
        if len(self._held) >= MAX_HELD:
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
        """Takes back records that earlier runs (or workers) could not append."""
        if self._directory is None:
            return
        known = {r.request_id for r in self._held}
        for path in sorted(self._directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}")):
            try:
                lines = path.read_text().splitlines()
            except OSError:
                continue  # removed by another process meanwhile
            for line in lines:
                try:
                    record = _from_json(line)
                except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                    log.error("unreadable line in %s skipped", path.name)
                    continue
                if record.request_id not in known:
                    self._held.append(record)
                    known.add(record.request_id)
            self._adopted.add(path)
        self._held.sort(key=lambda r: r.at)

    async def flush(self, append_if_absent: Callable[[LiabilityRecord], Awaitable[bool]]) -> int:
        """Appends held records in order until the store fails again; returns how many were
        handled. One flush at a time."""
        async with self._flushing:
            done = 0
            while self._held:
                record = self._held[0]
                try:
                    await append_if_absent(record)
                except StoreUnavailable:
                    break
                except Exception as error:  # a record that can never go in must not block
                    log.error("held liability record dropped: %s", type(error).__name__)
                self._held.pop(0)
                done += 1
            if done:
                log.warning("%d held liability records appended", done)
                self._rewrite()
            return done

    def _rewrite(self) -> None:
        """The own file holds what is still held; taken-back files are done with."""
        if self._file is None:
            return
        try:
            if self._held:
                self._file.write_text("".join(_to_json(r) + "\n" for r in self._held))
            else:
                self._file.unlink(missing_ok=True)
            for path in self._adopted - {self._file}:
                path.unlink(missing_ok=True)
            self._adopted.clear()
        except OSError as error:
            log.warning("pending liability file not rewritten: %s", type(error).__name__)
