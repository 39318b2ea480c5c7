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


def unavailability(error: BaseException) -> StoreUnavailable | None:
    """The store-level failure `error` is, if it says the store cannot write at all (rather
    than that one write broke a rule, such as a constraint)."""
    if isinstance(error, StoreUnavailable):
        return error
    if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        name = getattr(error, "sqlite_errorname", type(error).__name__)
        failure = StoreUnavailable(f"store write failed: {name}")
        failure.__cause__ = error
        return failure
    return None
