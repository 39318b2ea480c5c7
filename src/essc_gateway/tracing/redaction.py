"""Spans leave the process only as sanitised copies: personal data stays inside (A13(1)).

`RedactingSpanExporter` wraps an exporter (under a batch processor: the copies are made on its
export thread, off the request path) and `RedactingSpanProcessor` any span processor (the
copy made when the span ends); both pass on, for every ended span, a copy built by two rules:

1. **Allow-list of attribute keys.** Span, event and link attributes whose key is not allowed
   are dropped. The default allows the exact OTel keys the gRPC instrumentation sets (not whole
   namespaces: semantic conventions such as `rpc.grpc.request.metadata.<key>` copy request
   headers) and every project key starting with `essc.`.
2. **Value scrubbing.** Every kept string (attribute values, strings in sequences, span and
   event names, the status description, trace-state entries) goes through `scrub_text`, which
   replaces with `[redacted]`:

   - 18-character citizen ID numbers, also written in groups (6-8-4) or with a lower-case x;
   - any run of six or more digits: SMS codes, mobile numbers, and IDs inside longer numbers;
   - mobile numbers written in groups (`138 0013 8000`, `+86-138-0013-8000`);
   - physical card numbers (a letter and 8 digits, `K12345678`);
   - any run of non-ASCII letters, joined by name separators (`张三`, `买买提·艾力`).

   Digits are matched with Unicode `\\d` on purpose: a full-width or Arabic-Indic number is
   still personal data here. A number attribute (int, or a float with an integral value) is
   judged by its digits, so `13800138000` sent as an int is redacted too. Bytes values are
   replaced whole; nested mappings (the 1.45 SDK accepts them) have their keys scrubbed as well.
   Trace-state entries (they come from the caller's `tracestate` header) that the scrubber
   would change are dropped.

Identifiers the gateway generates (`GENERATED_IDENTIFIERS`: the ledger request id a bank
quotes in a dispute, outage, incident and window ids) pass unchanged under their own keys
when they have exactly the shape the gateway gives them; under any other key, or in any other
shape, they are scrubbed like every value (a uuid's hex can hold six digits in a row).

Exception events keep `exception.type` only: `exception.message` and `exception.stacktrace`
can quote request data.

Both rules over-redact on purpose: a false positive only costs readability (a six-digit byte
count is redacted too). Names are the weak spot. A regex cannot tell a name from other words,
so the scrubber removes every run of non-ASCII letters, not only 2-4 Han characters (longer
runs can hide a name inside a sentence; minority names use other scripts): span text in this
project is ASCII by design (`café` would become `caf[redacted]`). Names in Latin script
(pinyin) and passwords cannot be detected at all: the guarantee is the key allow-list plus
value scrubbing, and project code must still never put a name, password or other personal
field into an `essc.*` attribute, an event, a span name or a status description.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import overload

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, TraceState
from opentelemetry.trace.status import Status
from opentelemetry.util.types import AnyValue

__all__ = [
    "DEFAULT_ALLOWED_ATTRIBUTES",
    "GENERATED_IDENTIFIERS",
    "REDACTED",
    "RedactingSpanExporter",
    "RedactingSpanProcessor",
    "Redactor",
    "scrub_text",
]

_log = logging.getLogger(__name__)

REDACTED = "[redacted]"
"""What replaces each piece of personal data."""

DEFAULT_ALLOWED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # The gRPC semantic-convention keys our server and attempt spans set.
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "rpc.grpc.status_code",
        "rpc.user_agent",
        "net.peer.ip",
        "net.peer.port",
        "net.peer.name",
        # Their successors in newer semantic conventions, so an upgrade keeps the essentials.
        "rpc.system.name",
        "rpc.response.status_code",
        "server.address",
        "server.port",
        "client.address",
        "client.port",
        "network.peer.address",
        "network.peer.port",
        "network.transport",
        "network.type",
        "network.protocol.name",
        "network.protocol.version",
        "otel.status_code",
        "otel.status_description",
        "otel.scope.name",
        "otel.scope.version",
        "error.type",
        # Project attributes; values are scrubbed like all others.
        "essc.*",
    }
)
"""Attribute keys kept by default. An entry ending in `.*` allows every key with that prefix."""

GENERATED_IDENTIFIERS: Mapping[str, re.Pattern[str]] = {
    "essc.ledger_request_id": re.compile(r"[0-9a-f]{32}"),
    "essc.outage.id": re.compile(r"out-[0-9a-f]{16}"),
    "essc.incident.id": re.compile(r"in-[0-9a-f]{16}"),
    "essc.maintenance.window_id": re.compile(r"mw-[0-9a-f]{16}"),
}
"""Attribute keys whose values the gateway makes, with the exact shape it makes them in."""

_EXCEPTION_EVENT = "exception"
_EXCEPTION_TYPE = "exception.type"

_SEP = r"[ \-]"
_NON_ASCII_LETTER = r"[^\W\d_A-Za-z]"
# Alternatives are tried in order at each position; the leftmost match wins.
_PERSONAL_DATA = re.compile(
    "|".join(
        (
            # Citizen ID (GB 11643-1999), plain or grouped 6-8-4; before the digit-run rule so
            # that a grouped ID goes as a whole, check character included.
            rf"\d{{6}}{_SEP}?\d{{8}}{_SEP}?\d{{3}}[\dXx\uff38\uff58]",
            # Six or more digits: SMS codes, mobiles, IDs, and any of them inside a longer number.
            r"\d{6,}[Xx\uff38\uff58]?",
            # Mobile numbers written in groups, with or without the +86 country code.
            rf"(?:\+?86{_SEP}?)?1[3-9]\d(?:{_SEP}?\d){{8}}",
            # Physical card numbers: a letter and 8 digits.
            r"[A-Za-z]\d{8}",
            # Names: Han characters (or any non-ASCII letters), joined by the middle dot.
            rf"{_NON_ASCII_LETTER}+(?:[·•・‧.]{_NON_ASCII_LETTER}+)*",
        )
    )
)


def scrub_text(text: str) -> str:
    """Returns `text` with every ID, phone, card number, code and name-like run redacted."""
    return _PERSONAL_DATA.sub(REDACTED, text)


def _number_leaks(value: int | float) -> bool:
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return False
        value = int(value)
    digits = str(abs(value))
    return scrub_text(digits) != digits


def _scrub_scalar(value: str | bytes | bool | int | float | None) -> AnyValue:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return REDACTED  # opaque: cannot be vetted
    if value is None or isinstance(value, bool):
        return value
    return REDACTED if _number_leaks(value) else value


def _scrub_value(value: AnyValue) -> AnyValue:
    if isinstance(value, Mapping):
        # Nested keys are not allow-listed (the outer key was), so they are scrubbed too.
        return {scrub_text(key): _scrub_value(item) for key, item in value.items()}
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return _scrub_scalar(value)
    scrubbed = [_scrub_value(item) for item in value]
    changed_type = any(
        isinstance(new, str) and not isinstance(old, str)
        for new, old in zip(scrubbed, value, strict=True)
    )
    if changed_type:
        # A redacted number became a string: keep the sequence homogeneous for exporters.
        return tuple(item if isinstance(item, str) else str(item) for item in scrubbed)
    return tuple(scrubbed)


def _is_generated_identifier(key: str, value: AnyValue) -> bool:
    shape = GENERATED_IDENTIFIERS.get(key)
    return shape is not None and isinstance(value, str) and shape.fullmatch(value) is not None


class _KeyFilter:
    def __init__(self, allowed: frozenset[str]) -> None:
        self._exact = frozenset(key for key in allowed if not key.endswith(".*"))
        self._prefixes = tuple(key[:-1] for key in allowed if key.endswith(".*"))

    def allows(self, key: str) -> bool:
        return key in self._exact or key.startswith(self._prefixes)


class Redactor:
    """Builds the sanitised copy of a span (see the module docstring).

    Args:
        allowed_attributes: Attribute keys to keep (entries ending in `.*` are prefixes);
            `DEFAULT_ALLOWED_ATTRIBUTES` when None.
    """

    def __init__(self, allowed_attributes: frozenset[str] | None = None) -> None:
        self._keys = _KeyFilter(
            DEFAULT_ALLOWED_ATTRIBUTES if allowed_attributes is None else allowed_attributes
        )

    def sanitise(self, span: ReadableSpan) -> ReadableSpan:
        """Returns the copy of `span` that may leave the process."""
        status = span.status
        if status.description:
            status = Status(status.status_code, scrub_text(status.description))
        return ReadableSpan(
            name=scrub_text(span.name),
            context=_sanitise_context(span.get_span_context()),
            parent=_sanitise_context(span.parent),
            resource=span.resource,
            attributes=self._sanitise_attributes(span.attributes),
            events=tuple(self._sanitise_event(event) for event in span.events),
            links=tuple(
                Link(_sanitise_context(link.context), self._sanitise_attributes(link.attributes))
                for link in span.links
            ),
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def sanitise_or_drop(self, span: ReadableSpan) -> ReadableSpan | None:
        """The sanitised copy, or None when sanitising failed: fails closed, the raw span
        must never be passed on."""
        try:
            return self.sanitise(span)
        except Exception as error:
            # The type only: a message could quote the value that broke sanitising.
            _log.error("span dropped: redaction failed with %s", type(error).__name__)
            return None

    def _sanitise_attributes(
        self, attributes: Mapping[str, AnyValue] | None
    ) -> dict[str, AnyValue]:
        if not attributes:
            return {}
        return {
            key: value if _is_generated_identifier(key, value) else _scrub_value(value)
            for key, value in attributes.items()
            if self._keys.allows(key)
        }

    def _sanitise_event(self, event: Event) -> Event:
        attributes = event.attributes or {}
        kept: dict[str, AnyValue]
        if event.name == _EXCEPTION_EVENT:
            # exception.message and exception.stacktrace can quote request data.
            exception_type = attributes.get(_EXCEPTION_TYPE)
            kept = {} if exception_type is None else {_EXCEPTION_TYPE: _scrub_value(exception_type)}
        else:
            kept = self._sanitise_attributes(attributes)
        return Event(scrub_text(event.name), kept, timestamp=event.timestamp)


class RedactingSpanExporter(SpanExporter):
    """Exports sanitised copies of the spans it is given, through `inner`.

    Put it behind a batch processor (`BatchSpanProcessor(RedactingSpanExporter(exporter))`):
    the copies are then made on the processor's export thread, in batches, and the request
    path only queues the ended span. Sanitising fails closed, span by span.
    """

    def __init__(
        self, inner: SpanExporter, allowed_attributes: frozenset[str] | None = None
    ) -> None:
        self._inner = inner
        self._redactor = Redactor(allowed_attributes)

    @property
    def inner(self) -> SpanExporter:
        """The wrapped exporter."""
        return self._inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean = [c for c in map(self._redactor.sanitise_or_drop, spans) if c is not None]
        return self._inner.export(clean) if clean else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class RedactingSpanProcessor(SpanProcessor):
    """Passes every ended span to `inner` as a sanitised copy, made at once on the thread
    that ended it: for a processor that exports as it receives (a simple processor, a test's
    in-memory one). In front of an exporter, `RedactingSpanExporter` under a batch processor
    makes the copies off the request path.

    Sanitising fails closed: if it raises, the span is dropped, never passed on as it was.
    `on_start`, `shutdown` and `force_flush` delegate. `on_start` hands `inner` the live span,
    which is harmless for the SDK's batch and simple processors (they ignore it); do not wrap a
    processor that exports at start.

    Args:
        inner: The processor that receives the sanitised spans.
        allowed_attributes: Attribute keys to keep (entries ending in `.*` are prefixes);
            `DEFAULT_ALLOWED_ATTRIBUTES` when None.
    """

    def __init__(
        self, inner: SpanProcessor, allowed_attributes: frozenset[str] | None = None
    ) -> None:
        self._inner = inner
        self._redactor = Redactor(allowed_attributes)

    @property
    def inner(self) -> SpanProcessor:
        """The wrapped processor."""
        return self._inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context=parent_context)

    # `_on_ending` is deliberately not delegated: it would hand `inner` the unredacted span.

    def on_end(self, span: ReadableSpan) -> None:
        clean = self._redactor.sanitise_or_drop(span)
        if clean is not None:
            self._inner.on_end(clean)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def sanitise(self, span: ReadableSpan) -> ReadableSpan:
        """Returns the copy of `span` that `inner` would receive."""
        return self._redactor.sanitise(span)


@overload
def _sanitise_context(context: SpanContext) -> SpanContext: ...
@overload
def _sanitise_context(context: SpanContext | None) -> SpanContext | None: ...
def _sanitise_context(context: SpanContext | None) -> SpanContext | None:
    # Trace state arrives from the caller's `tracestate` header and is exported as is:
    # drop every entry that the scrubber would change.
    if context is None or not context.trace_state:
        return context
    entries = [
        (key, value)
        for key, value in context.trace_state.items()
        if scrub_text(key) == key and scrub_text(value) == value
    ]
    if len(entries) == len(context.trace_state):
        return context
    return SpanContext(
        trace_id=context.trace_id,
        span_id=context.span_id,
        is_remote=context.is_remote,
        trace_flags=context.trace_flags,
        trace_state=TraceState(entries),
    )
