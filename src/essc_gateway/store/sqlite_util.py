"""Helpers shared by the SQLite adapter's modules."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from opentelemetry.trace import NoOpTracer, Tracer

_NO_TRACER = NoOpTracer()
P = ParamSpec("P")
R = TypeVar("R")


def uncancellable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """A write runs to its end even when its caller is cancelled (client gone, deadline):
    a cancelled await could leave SQLite inside an open transaction, and whether to write
    was decided before the call."""

    name = f"store {method.__name__}"

    async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        # The store's tracer, when it has one: each write is a span of the request's trace.
        tracer: Tracer = getattr(args[0], "tracer", None) or _NO_TRACER
        with tracer.start_as_current_span(name):
            return await method(*args, **kwargs)

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        task = asyncio.ensure_future(traced(*args, **kwargs))
        # Consume a failure nobody awaits any more, so it is not reported as lost.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(task)

    return run


def text_of(value: datetime | None) -> str | None:
    # Always UTC: times are compared as text, and +08:00 would sort apart from +00:00.
    return None if value is None else value.astimezone(UTC).isoformat()


def time_or_none(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def time_of(value: str) -> datetime:
    """A NOT NULL time column."""
    return datetime.fromisoformat(value)
