"""A request's child spans (platform attempts, store writes) kept as plain records while it
runs, made into SDK spans only when its trace will be exported.

Tail sampling (`sampling`) drops most successful traces, but a span costs its creation
whatever becomes of it (ids, context, attributes, processors: a tenth of a Verify's CPU for
its three platform attempts, measured). So a request's platform attempts and store writes
are recorded here (name, times, attributes, status) and turned into spans, children of the
server span with their real start and end times, only if the request's trace is kept: it
failed, one of its child spans failed, or its trace id falls in the exported share. Work
done outside a request (background jobs) has no buffer and makes its spans at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue


@dataclass(slots=True)
class DeferredSpan:
    name: str
    start_ns: int
    attributes: dict[str, AttributeValue]
    kind: SpanKind = SpanKind.CLIENT
    end_ns: int = 0
    error: str | None = None
    """The status description of a failed span; None when it succeeded."""

    def set_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        self.attributes.update(attributes)

    def fail(self, description: str) -> None:
        self.error = description

    def end(self) -> None:
        self.end_ns = time.time_ns()


class _Immediate:
    """An SDK span made at once (work outside a request), seen as a `ChildSpan`."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def set_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        self._span.set_attributes(attributes)

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


ChildSpan = DeferredSpan | _Immediate
"""What `child_span` yields: attributes may be added, the span marked failed."""


@contextmanager
def child_span(
    tracer: Tracer,
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, AttributeValue] | None = None,
) -> Iterator[ChildSpan]:
    """A span of the current request's work, deferred while a request runs (see the module
    docstring), made at once outside one. An exception leaving it marks it failed (with
    its type, never its message) unless `fail` already said why."""
    deferred = request_spans.get()
    if deferred is None:
        with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
            yield _Immediate(span)
        return
    recorded = deferred.start(name, attributes or {}, kind)
    try:
        yield recorded
    except BaseException as error:
        if recorded.error is None:
            recorded.fail(type(error).__name__)
        raise
    finally:
        recorded.end()


class DeferredSpans:
    """One request's deferred child spans."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: list[DeferredSpan] = []

    def start(
        self,
        name: str,
        attributes: dict[str, AttributeValue],
        kind: SpanKind = SpanKind.CLIENT,
    ) -> DeferredSpan:
        span = DeferredSpan(name, time.time_ns(), attributes, kind)
        self._spans.append(span)
        return span

    @property
    def any_failed(self) -> bool:
        return any(s.error is not None for s in self._spans)

    def emit(self, tracer: Tracer, parent: Context) -> None:
        """The recorded spans as SDK spans under `parent` (the server span's context)."""
        for deferred in self._spans:
            span = tracer.start_span(
                deferred.name,
                context=parent,
                kind=deferred.kind,
                attributes=deferred.attributes,
                start_time=deferred.start_ns,
            )
            if deferred.error is not None:
                span.set_status(Status(StatusCode.ERROR, deferred.error))
            span.end(end_time=deferred.end_ns or time.time_ns())


request_spans: ContextVar[DeferredSpans | None] = ContextVar("request_spans", default=None)
"""The current request's buffer (set by the transport for each call; None outside one)."""
