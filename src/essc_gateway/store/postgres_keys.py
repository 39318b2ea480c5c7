"""The key hierarchy's table in the PostgreSQL store: the `KeyStore` port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from essc_gateway.evidence.entries import key_event_entry
from essc_gateway.keys.model import KeyEvent, KeyVersion
from essc_gateway.store.base import KeyVersionTaken
from essc_gateway.store.postgres_evidence import log_append
from essc_gateway.store.postgres_schema import Db
from essc_gateway.store.rows import as_stored, key_version_from
from essc_gateway.store.sqlite_util import uncancellable

R = TypeVar("R")


class PostgresKeyTables:
    """Mixed into `PostgresStore`."""

    async def _write(self, transaction: Callable[[Db], Awaitable[R]]) -> R:
        raise NotImplementedError

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def key_versions(self) -> list[KeyVersion]:
        rows = await self._rows("SELECT * FROM managed_keys ORDER BY bank_id, purpose, version")
        return [key_version_from(r, as_stored) for r in rows]

    @uncancellable
    async def add_key_versions(
        self, keys: Sequence[KeyVersion], events: Sequence[KeyEvent]
    ) -> bool:
        async def work(db: Db) -> None:
            try:
                await insert(db)
            except asyncpg.UniqueViolationError:
                raise KeyVersionTaken from None
            await log_append(db, [key_event_entry(e) for e in events])

        async def insert(db: Db) -> None:
            await db.executemany(
                "INSERT INTO managed_keys (bank_id, purpose, version, suite, wrapped, "
                "parent_version, state, created_at, created_by) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [
                    (
                        k.bank_id,
                        k.purpose.value,
                        k.version,
                        int(k.suite),
                        k.wrapped,
                        k.parent_version,
                        k.state.value,
                        k.created_at,
                        k.created_by,
                    )
                    for k in keys
                ],
            )

        try:
            await self._write(work)
        except KeyVersionTaken:
            return False
        return True
