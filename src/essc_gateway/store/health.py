"""Whether the store can write right now (a full disk, a file system gone read-only, an I/O
error): watched from every write, so that health checks and callers learn of it at once."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from essc_gateway.store.base import StoreUnavailable

log = logging.getLogger("essc_gateway.store")


class WriteHealth:
    """Writable or not, as the last write found; listeners hear of every change."""

    def __init__(self) -> None:
        self.writable = True
        self._listeners: list[Callable[[bool], None]] = []

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def report(self, writable: bool) -> None:
        if writable == self.writable:
            return
        self.writable = writable
        if writable:
            log.warning("store writes again")
        else:
            log.error("store cannot write: answering UNAVAILABLE until it can")
        for listener in self._listeners:
            listener(writable)


# SQLite's codes for a store that cannot write at all until something outside changes (a
# full disk, a file system gone read-only, an I/O error): health turns NOT_SERVING.
_CANNOT_WRITE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
# Another writer held the lock past busy_timeout: this write failed, the store is fine.
_CONTENDED = ("SQLITE_BUSY", "SQLITE_LOCKED")


def unavailability(error: BaseException) -> tuple[StoreUnavailable, bool] | None:
    """The store-level failure `error` is, if it is one (rather than a write that broke a
    rule, or a bug), and whether it says the store cannot write at all."""
    if isinstance(error, StoreUnavailable):
        return error, True
    if not isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) or isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        return None
    name = str(getattr(error, "sqlite_errorname", ""))
    if not name.startswith(_CANNOT_WRITE + _CONTENDED):
        return None  # e.g. SQLITE_ERROR: a statement of ours is wrong, not the store
    failure = StoreUnavailable(f"store write failed: {name}")
    failure.__cause__ = error
    return failure, name.startswith(_CANNOT_WRITE)
