"""A span exporter that appends JSON lines to a local file: the trace record kept without a
collector, part of the evidence for every failed request (A16)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonLinesSpanExporter"]

_log = logging.getLogger(__name__)


def _owner_only(path: str, flags: int) -> int:
    # Spans are redacted, but still operational data: readable by the service account only.
    return os.open(path, flags, 0o600)


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span per line (`ReadableSpan.to_json`) to `path`.

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

    @property
    def path(self) -> Path:
        """The file spans are appended to."""
        return self._path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(f"{span.to_json(indent=None)}\n" for span in spans)
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
