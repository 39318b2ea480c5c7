"""Tracing: a tracer provider whose spans leave the process only after redaction (A13(1))."""

from __future__ import annotations

from essc_gateway.tracing.exporters import JsonLinesSpanExporter
from essc_gateway.tracing.redaction import (
    DEFAULT_ALLOWED_ATTRIBUTES,
    REDACTED,
    RedactingSpanExporter,
    RedactingSpanProcessor,
    scrub_text,
)
from essc_gateway.tracing.setup import (
    DEFAULT_TRACES_FILE,
    TracingConfig,
    build_span_processors,
    build_tracer_provider,
    tracing_config_from_env,
)

__all__ = [
    "DEFAULT_ALLOWED_ATTRIBUTES",
    "DEFAULT_TRACES_FILE",
    "REDACTED",
    "JsonLinesSpanExporter",
    "RedactingSpanExporter",
    "RedactingSpanProcessor",
    "TracingConfig",
    "build_span_processors",
    "build_tracer_provider",
    "scrub_text",
    "tracing_config_from_env",
]
