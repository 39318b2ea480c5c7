"""A span exporter that appends JSON lines to a local file: the trace record kept without a
collector, part of the evidence for every failed request (A16)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import ns_to_iso_str
from opentelemetry.trace import SpanContext, format_span_id, format_trace_id

__all__ = ["JsonLinesSpanExporter"]

_log = logging.getLogger(__name__)


def _owner_only(path: str, flags: int) -> int:
    # Spans are redacted, but still operational data: readable by the service account only.
    return os.open(path, flags, 0o600)


def _context(context: SpanContext) -> dict[str, str]:
    return {
        "trace_id": f"0x{format_trace_id(context.trace_id)}",
        "span_id": f"0x{format_span_id(context.span_id)}",
        "trace_state": repr(context.trace_state),
    }


class _SpanRecords:
    """The fields of `ReadableSpan.to_json`, built without its cost: the SDK encodes and
    decodes the resource again for every span (a third of the exporter's time, measured)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, dict[str, Any]]] = {}

    def _resource(self, resource: Resource) -> dict[str, Any]:
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            cached = (resource, json.loads(resource.to_json()))
            self._resources[id(resource)] = cached
        return cached[1]

    def line(self, span: ReadableSpan) -> str:
        status: dict[str, str] = {"status_code": span.status.status_code.name}
        if span.status.description:
            status["description"] = span.status.description
        record: dict[str, Any] = {
            "name": span.name,
            "context": _context(span.context) if span.context else None,
            "kind": str(span.kind),
            "parent_id": f"0x{format_span_id(span.parent.span_id)}" if span.parent else None,
            "start_time": ns_to_iso_str(span.start_time) if span.start_time else None,
            "end_time": ns_to_iso_str(span.end_time) if span.end_time else None,
            "status": status,
            "attributes": dict(span.attributes or {}),
            "events": [
                {
                    "name": event.name,
                    "timestamp": ns_to_iso_str(event.timestamp),
                    "attributes": dict(event.attributes or {}),
                }
                for event in span.events
            ],
            "links": [
                {"context": _context(link.context), "attributes": dict(link.attributes or {})}
                for link in span.links
            ],
            "resource": self._resource(span.resource),
        }
        return json.dumps(record) + "\n"


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span per line (the fields of `ReadableSpan.to_json`) to
    `path`.

    The file is opened on the first export (parent directories are created then) and flushed
    after every batch. Thread-safe. After `shutdown` the file is closed and exports fail.
    The exporter writes what it is given: put it behind a `RedactingSpanProcessor`.

    Args:
        path: The file to append to.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._closed = False
        self._records = _SpanRecords()

    @property
    def path(self) -> Path:
        """The file spans are appended to."""
        return self._path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(self._records.line(span) for span in spans)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                if self._file is None:
                    self._path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(  # noqa: SIM115 - kept open across batches, closed in shutdown
                        self._path, "a", encoding="utf-8", opener=_owner_only
                    )
                self._file.write(lines)
                self._file.flush()
            except OSError as error:
                _log.warning("cannot append spans to %s: %s", self._path, error.strerror)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every batch is flushed as it is written; nothing is buffered here.
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None
