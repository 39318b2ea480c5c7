"""Log lines as JSON, one object per line, for the bank's log pipeline: time, level, logger,
message, the trace and span of the call being served (so a line leads to its trace), and the
access log's fields (bank, rpc, code, reason, duration_ms). Messages pass the traces'
scrubber too: personal data never leaves in clear, even from a careless message."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from essc_gateway.tracing.redaction import scrub_text

ACCESS_FIELDS = ("bank", "rpc", "code", "reason", "duration_ms")
"""What the access log adds to each line (`extra=`), never personal data."""


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_text(record.getMessage()),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = trace.format_trace_id(context.trace_id)
            line["span_id"] = trace.format_span_id(context.span_id)
        for field in ACCESS_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:  # the type only: an exception's message may quote its input
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, json_lines: bool) -> None:
    """The root logger: JSON lines, or the plain text a developer reads."""
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
