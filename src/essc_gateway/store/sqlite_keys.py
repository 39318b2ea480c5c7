"""The key hierarchy's table in the SQLite store: the `KeyStore` port."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from essc_gateway.evidence.entries import key_event_entry
from essc_gateway.keys.model import KeyEvent, KeyVersion
from essc_gateway.store.base import KeyVersionTaken
from essc_gateway.store.rows import key_version_from
from essc_gateway.store.sqlite_evidence import log_append
from essc_gateway.store.sqlite_util import text_of, time_or_none, uncancellable

R = TypeVar("R")


class SqliteKeyTables:
    """Mixed into `SqliteStore`."""

    async def _write(self, work: Callable[[sqlite3.Connection], R]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def key_versions(self) -> list[KeyVersion]:
        rows = await self._rows("SELECT * FROM managed_keys ORDER BY bank_id, purpose, version", ())
        return [key_version_from(r, time_or_none) for r in rows]

    @uncancellable
    async def add_key_versions(
        self, keys: Sequence[KeyVersion], events: Sequence[KeyEvent]
    ) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            try:
                db.executemany(
                    "INSERT INTO managed_keys (bank_id, purpose, version, suite, wrapped, "
                    "parent_version, state, created_at, created_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            k.bank_id,
                            k.purpose.value,
                            k.version,
                            int(k.suite),
                            k.wrapped,
                            k.parent_version,
                            k.state.value,
                            text_of(k.created_at),
                            k.created_by,
                        )
                        for k in keys
                    ],
                )
            except sqlite3.IntegrityError:
                raise KeyVersionTaken from None
            log_append(db, [key_event_entry(e) for e in events])
            return True

        try:
            return await self._write(work)
        except KeyVersionTaken:
            return False
