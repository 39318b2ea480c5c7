"""Which PostgreSQL failures mean the store is unavailable (the server gone, shutting down,
out of disk, read-only after a failover) rather than a write that broke a rule or a bug."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from essc_gateway.store.base import HolderKeyTaken, LiveCardConflict, StoreUnavailable

# SQLSTATE classes and codes after which no write succeeds until something outside changes:
# connection exceptions, operator intervention (shutdown), insufficient resources (disk
# full), system errors (I/O), a read-only transaction (a standby), data corrupted.
_CANNOT_WRITE = ("08", "57P", "53", "58", "25006", "XX001", "XX002")
# This write lost a race or waited too long; the store is fine: serialization failure,
# deadlock, lock not available, statement timeout.
_CONTENDED = ("40001", "40P01", "55P03", "57014")


def unavailability(error: BaseException) -> tuple[StoreUnavailable, bool] | None:
    """The store-level failure `error` is, if it is one, and whether it says the store cannot
    write at all (health turns NOT_SERVING) rather than this write failing alone."""
    if isinstance(error, StoreUnavailable):
        return error, True
    code = ""
    if isinstance(error, asyncpg.PostgresError):
        code = str(getattr(error, "sqlstate", "") or "")
        if not code.startswith(_CANNOT_WRITE + _CONTENDED):
            return None
        cannot_write = code.startswith(_CANNOT_WRITE)
    elif isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError):
        # Refused, reset, timed out connecting, acquiring or running; the connection closed
        # under a transaction (asyncpg then raises InterfaceError from the transaction's
        # end, hiding the 08 error), the pool closing: no server to write to.
        code, cannot_write = type(error).__name__, True
    else:
        return None
    failure = StoreUnavailable(f"store write failed: {code}")
    failure.__cause__ = error
    return failure, cannot_write


def is_contended(error: BaseException) -> bool:
    """A failure that running the same transaction again may not meet."""
    return isinstance(error, asyncpg.PostgresError) and str(
        getattr(error, "sqlstate", "")
    ).startswith(("40001", "40P01"))


@contextmanager
def live_card_conflict() -> Iterator[None]:
    """A card insert that meets the holder's live card (A3) raises the port's error."""
    try:
        yield
    except asyncpg.UniqueViolationError as conflict:
        if conflict.constraint_name == "holder_keys_pkey":
            raise HolderKeyTaken("the holder has a key already") from None
        if conflict.constraint_name != "cards_one_live_card_per_holder":
            raise
        raise LiveCardConflict("the holder has a live card already") from None
