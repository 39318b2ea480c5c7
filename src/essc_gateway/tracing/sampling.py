"""Tail sampling: every trace that holds an error is kept whole; of the others, a fixed
share chosen by trace id (the same choice in every process).

Failed requests are what a bank must be able to prove a liability clause for (A16), so
their traces are never sampled away; successful ones are plentiful, and exporting each
costs more than serving a light request (redaction and encoding, measured).

A trace is decided when its local root span ends (no parent, or a remote one): its other
spans of this process, which end first, wait in a buffer until then. A span ending after
its root follows the decision already taken.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

_SCALE = 1 << 64
# Traces waiting for their root, and decisions remembered for late spans; beyond either
# bound the oldest goes (its buffered spans are kept: when unsure, keep).
_MAX_OPEN_TRACES = 10_000
_MAX_DECISIONS = 10_000


class TailSamplingProcessor(SpanProcessor):
    """Passes each of `inner` every span of kept traces (see the module docstring).

    Args:
        inner: Receive the kept spans (the redacting processors of each destination).
        success_ratio: Share of traces without an error to keep, 0 to 1.
    """

    def __init__(self, inner: Sequence[SpanProcessor], success_ratio: float) -> None:
        if not 0.0 <= success_ratio <= 1.0:
            raise ValueError("success_ratio must be between 0 and 1")
        self._inner = tuple(inner)
        self._threshold = int(success_ratio * _SCALE)
        self._lock = threading.Lock()
        self._open: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._decided: OrderedDict[int, bool] = OrderedDict()

    def sampled(self, trace_id: int) -> bool:
        """Whether a trace is kept even without an error (known from its id at once)."""
        # The low 64 bits of a W3C trace id are random: a uniform draw, equal everywhere.
        return (trace_id & (_SCALE - 1)) < self._threshold

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._inner:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        trace_id = context.trace_id
        failed = span.status.status_code is StatusCode.ERROR
        is_root = span.parent is None or span.parent.is_remote
        forward: list[ReadableSpan] = []
        with self._lock:
            decided = self._decided.get(trace_id)
            if decided is not None:
                forward = [span] if decided or failed else []
            elif not is_root:
                self._open.setdefault(trace_id, []).append(span)
                if len(self._open) > _MAX_OPEN_TRACES:
                    _, forward = self._open.popitem(last=False)
            else:
                waiting = self._open.pop(trace_id, [])
                keep = failed or self.sampled(trace_id) or any(_failed(s) for s in waiting)
                self._decided[trace_id] = keep
                if len(self._decided) > _MAX_DECISIONS:
                    self._decided.popitem(last=False)
                forward = [*waiting, span] if keep else []
        for kept in forward:
            for processor in self._inner:
                processor.on_end(kept)

    def shutdown(self) -> None:
        with self._lock:
            leftovers = [span for spans in self._open.values() for span in spans]
            self._open.clear()
        for processor in self._inner:
            for span in leftovers:  # roots that never ended: keep what they had
                processor.on_end(span)
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = [processor.force_flush(timeout_millis) for processor in self._inner]
        return all(flushed)


def _failed(span: ReadableSpan) -> bool:
    return span.status.status_code is StatusCode.ERROR
