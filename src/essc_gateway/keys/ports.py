"""What key management needs of the store (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from essc_gateway.keys.model import KeyEvent, KeyVersion


class KeyStore(Protocol):
    async def key_versions(self) -> list[KeyVersion]:
        """Every key version below the root, of every bank."""
        ...

    async def add_key_versions(
        self, keys: Sequence[KeyVersion], events: Sequence[KeyEvent]
    ) -> bool:
        """Inserts the versions and logs the events, in one transaction. False, with nothing
        written, when one of them exists already (another replica made it first)."""
        ...
