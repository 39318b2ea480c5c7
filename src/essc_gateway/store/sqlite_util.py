"""Helpers shared by the SQLite adapter's modules."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Coroutine
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from opentelemetry.trace import Tracer

from essc_gateway.tracing.deferred import child_span

P = ParamSpec("P")
R = TypeVar("R")


def uncancellable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Marks a write: a span of the request's trace (when the store has a tracer). The write
    runs to its end even when its caller is cancelled (client gone, deadline): such methods
    only hand one function to the batch writer, which shields it once queued; whether to
    write was decided before the call."""

    name = f"store {method.__name__}"

    @functools.wraps(method)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        tracer: Tracer | None = getattr(args[0], "tracer", None)
        if tracer is None:  # no span to make: not even a no-op one (measured: a tenth of
            return await method(*args, **kwargs)  # a store write's CPU)
        with child_span(tracer, name):
            return await method(*args, **kwargs)

    return traced


def one_row(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
    """The first row of a statement run inside a write (its cursor closed at once)."""
    with closing(db.execute(sql, params)) as cursor:
        row: sqlite3.Row | None = cursor.fetchone()
    return row


def text_of(value: datetime | None) -> str | None:
    # Always UTC: times are compared as text, and +08:00 would sort apart from +00:00.
    return None if value is None else value.astimezone(UTC).isoformat()


def time_or_none(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def time_of(value: str) -> datetime:
    """A NOT NULL time column."""
    return datetime.fromisoformat(value)
