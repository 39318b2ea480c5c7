"""No personal data leaves the process in a span (A13(1)): real spans, real SDK pipeline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
    set_span_in_context,
)

from essc_gateway.tracing import (
    REDACTED,
    RedactingSpanExporter,
    RedactingSpanProcessor,
    scrub_text,
)

ID_NUMBER = "11010519491231002X"
PERSONAL_DATA = [
    pytest.param(ID_NUMBER, id="id-number"),
    pytest.param("440524188001010014", id="id-number-digit-check"),
    pytest.param("11010519491231002x", id="id-number-lower-x"),
    pytest.param("110105 19491231 002X", id="id-number-grouped"),
    pytest.param("13800138000", id="mobile"),
    pytest.param("+8613800138000", id="mobile-e164"),
    pytest.param("+86 138 0013 8000", id="mobile-grouped"),
    pytest.param("138-0013-8000", id="mobile-hyphens"),
    pytest.param("１３８００１３８０００", id="mobile-full-width"),
    pytest.param("K12345678", id="card-number"),
    pytest.param("123456", id="sms-code"),
    pytest.param("张三", id="name"),
    pytest.param("欧阳娜娜", id="name-four-characters"),
    pytest.param("买买提·艾力", id="name-middle-dot"),
]


@dataclass
class Pipeline:
    tracer: Tracer
    exporter: InMemorySpanExporter

    def only_span(self) -> ReadableSpan:
        (span,) = self.exporter.get_finished_spans()
        return span


def make_pipeline(
    allowed_attributes: frozenset[str] | None = None, *, at_export: bool = False
) -> Iterator[Pipeline]:
    """Redaction as a span ends (`RedactingSpanProcessor`) or as it is exported
    (`RedactingSpanExporter`, what the configured destinations use)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        SimpleSpanProcessor(RedactingSpanExporter(exporter, allowed_attributes))
        if at_export
        else RedactingSpanProcessor(SimpleSpanProcessor(exporter), allowed_attributes)
    )
    yield Pipeline(provider.get_tracer("test"), exporter)
    provider.shutdown()


@pytest.fixture(params=["as-spans-end", "at-export"])
def pipeline(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    yield from make_pipeline(at_export=request.param == "at-export")


def exported_text(span: ReadableSpan) -> str:
    """Everything an exporter would see, non-ASCII unescaped so that names can be searched."""
    return json.dumps(json.loads(span.to_json()), ensure_ascii=False)


@pytest.mark.parametrize("secret", PERSONAL_DATA)
def test_a13_personal_data_is_redacted_everywhere_in_a_span(
    pipeline: Pipeline, secret: str
) -> None:
    linked = SpanContext(trace_id=7, span_id=8, is_remote=True)
    with pipeline.tracer.start_as_current_span(
        f"verify {secret}",
        attributes={"essc.note": f"holder {secret} refused", "essc.list": ["ok", secret]},
        links=[Link(linked, {"essc.why": f"retry of {secret}"})],
    ) as span:
        span.add_event(f"checked {secret}", {"essc.detail": f"<{secret}>"})
        span.set_status(StatusCode.ERROR, f"platform said {secret}")

    exported = pipeline.only_span()
    assert secret not in exported_text(exported)
    assert exported.name == f"verify {REDACTED}"
    assert exported.attributes == {
        "essc.note": f"holder {REDACTED} refused",
        "essc.list": ("ok", REDACTED),
    }
    (event,) = exported.events
    assert event.name == f"checked {REDACTED}"
    assert event.attributes == {"essc.detail": f"<{REDACTED}>"}
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.status.description == f"platform said {REDACTED}"
    assert exported.links[0].attributes == {"essc.why": f"retry of {REDACTED}"}


def test_identifiers_the_gateway_generates_pass_unchanged(pipeline: Pipeline) -> None:
    # Issue 10, defect 12: a ledger id with six digits in a row was redacted, so the id a
    # bank gets in ErrorInfo could not be found in the traces.
    ledger_id = "3f1a0812345678ab9c0d1e2f3a4b5c6d"
    outage_id = "out-1234567890abcdef"
    with pipeline.tracer.start_as_current_span(
        "Issue",
        attributes={
            "essc.ledger_request_id": ledger_id,
            "essc.outage.id": outage_id,
            # The same shapes under other keys, and other shapes under these keys, are not
            # identifiers the gateway made: scrubbed as ever.
            "essc.note": ledger_id,
            "essc.incident.id": "in-11010519491231002X",
        },
    ):
        pass

    attributes = pipeline.only_span().attributes
    assert attributes is not None
    assert attributes["essc.ledger_request_id"] == ledger_id
    assert attributes["essc.outage.id"] == outage_id
    assert REDACTED in str(attributes["essc.note"])
    assert attributes["essc.incident.id"] == f"in-{REDACTED}"


def test_attributes_outside_the_allow_list_are_dropped_and_grpc_ones_kept(
    pipeline: Pipeline,
) -> None:
    grpc_attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.service": "essc.gateway.v1.Gateway",
        "rpc.method": "IssueCard",
        "rpc.grpc.status_code": 3,
        "net.peer.ip": "127.0.0.1",
        "net.peer.port": "50051",
        "server.address": "gateway.example",
        "network.peer.address": "::1",
        "error.type": "INVALID_ARGUMENT",
    }
    unknown = {
        "holder.name": "Zhang San",  # pinyin: only the allow-list can keep it out
        "password": "Secret-2024",
        "rpc.grpc.request.metadata.x-holder": "Zhang San",  # not the whole rpc.* namespace
        "esscnote": "no dot, not a project key",
        "http.url": "https://example/?id=1",
    }
    with pipeline.tracer.start_as_current_span(
        "/essc.gateway.v1.Gateway/IssueCard",
        attributes={**grpc_attributes, **unknown, "essc.bank_id": "bank-a"},
    ):
        pass

    exported = pipeline.only_span()
    assert exported.name == "/essc.gateway.v1.Gateway/IssueCard"
    assert exported.attributes == {**grpc_attributes, "essc.bank_id": "bank-a"}


def test_events_outside_the_allow_list_lose_their_attributes(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("work") as span:
        span.add_event("step", {"holder": "Zhang San", "essc.step": "platform"})

    (event,) = pipeline.only_span().events
    assert event.attributes == {"essc.step": "platform"}


def test_exception_events_keep_the_type_only(pipeline: Pipeline) -> None:
    class HolderError(Exception):
        pass

    with (
        pytest.raises(HolderError),
        pipeline.tracer.start_as_current_span("work", attributes={"essc.step": "check"}),
    ):
        raise HolderError(f"holder {ID_NUMBER} has no card")

    exported = pipeline.only_span()
    (event,) = exported.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert list(attributes) == ["exception.type"]
    assert str(attributes["exception.type"]).endswith("HolderError")
    assert ID_NUMBER not in exported_text(exported)
    # The SDK also copies "Type: message" into the status description: scrubbed, not dropped,
    # so undetectable data (a pinyin name) in an exception message would survive there.
    assert exported.status.description is not None
    assert exported.status.description.endswith(f"HolderError: holder {REDACTED} has no card")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(13800138000, REDACTED, id="mobile-as-int"),
        pytest.param(110105194912310021, REDACTED, id="id-number-as-int"),
        pytest.param(123456.0, REDACTED, id="code-as-integral-float"),
        pytest.param(3, 3, id="small-int"),
        pytest.param(0.123456, 0.123456, id="fraction"),
        pytest.param(True, True, id="bool"),
        pytest.param([1, 13800138000], ("1", REDACTED), id="int-sequence-becomes-strings"),
        pytest.param([1, 2], (1, 2), id="int-sequence"),
        pytest.param(b"13800138000", REDACTED, id="bytes"),
        pytest.param(
            {"张三": "13800138000", "ok": 1},
            {REDACTED: REDACTED, "ok": 1},
            id="nested-mapping",
        ),
    ],
)
def test_non_string_values_are_judged_by_their_digits(
    pipeline: Pipeline, value: object, expected: object
) -> None:
    with pipeline.tracer.start_as_current_span("work", attributes={"essc.value": value}):  # type: ignore[dict-item]
        pass

    assert pipeline.only_span().attributes == {"essc.value": expected}


def test_trace_state_entries_carrying_personal_data_are_dropped(pipeline: Pipeline) -> None:
    caller = SpanContext(
        trace_id=0x1234,
        span_id=0x5678,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("holder", ID_NUMBER), ("vendor", "abc")]),
    )
    with pipeline.tracer.start_as_current_span(
        "work", context=set_span_in_context(NonRecordingSpan(caller))
    ):
        pass

    exported = pipeline.only_span()
    context = exported.get_span_context()
    assert context is not None
    assert dict(context.trace_state) == {"vendor": "abc"}
    assert context.trace_id == 0x1234
    assert exported.parent is not None
    assert exported.parent.span_id == 0x5678


def test_a_custom_allow_list_replaces_the_default() -> None:
    for pipeline in make_pipeline(frozenset({"app.kind", "app.extra.*"})):
        attributes = {"app.kind": "x", "app.extra.a": "y", "rpc.method": "M", "essc.z": "z"}
        with pipeline.tracer.start_as_current_span("work", attributes=attributes):
            pass
        assert pipeline.only_span().attributes == {"app.kind": "x", "app.extra.a": "y"}


class RecordingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.calls.append("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append("on_end")

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append(f"force_flush({timeout_millis})")
        return False


def test_start_flush_and_shutdown_are_delegated() -> None:
    inner = RecordingProcessor()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(RedactingSpanProcessor(inner))
    with provider.get_tracer("test").start_as_current_span("work"):
        pass
    assert provider.force_flush(1234) is False
    provider.shutdown()
    # The provider passes on what is left of the timeout, a little less than asked.
    assert [call.partition("(")[0] for call in inner.calls] == [
        "on_start",
        "on_end",
        "force_flush",
        "shutdown",
    ]


# --- property: valid-looking personal data inside arbitrary text never survives -------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    area = draw(st.sampled_from(["110105", "310101", "440524", "130102", "650102"]))
    birth = draw(st.dates(date(1900, 1, 1), date(2025, 12, 31))).strftime("%Y%m%d")
    sequence = f"{draw(st.integers(0, 999)):03d}"
    body = area + birth + sequence
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]
    written = body + check
    if draw(st.booleans()):
        written = written.lower()
    if draw(st.booleans()):
        written = f"{written[:6]} {written[6:14]} {written[14:]}"
    return written


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    number = f"1{draw(st.integers(3, 9))}{draw(st.integers(0, 999_999_999)):09d}"
    style = draw(st.sampled_from(["national", "e164", "grouped", "hyphens"]))
    if style == "e164":
        return f"+86{number}"
    if style == "grouped":
        return f"+86 {number[:3]} {number[3:7]} {number[7:]}"
    if style == "hyphens":
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    return number


card_numbers = st.builds(
    lambda letter, digits: f"{letter}{digits:08d}",
    st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZ"),
    st.integers(0, 99_999_999),
)
sms_codes = st.integers(0, 999_999).map(lambda code: f"{code:06d}")
secrets_ = st.one_of(id_numbers(), mobiles(), card_numbers, sms_codes)


# Arbitrary text, and text made of the characters most likely to confuse the patterns.
surroundings = st.one_of(st.text(max_size=12), st.text("0123456789 -+xXK张·", max_size=12))


@given(surroundings, secrets_, surroundings)
def test_property_no_id_phone_card_or_code_survives_in_any_text(
    before: str, secret: str, after: str
) -> None:
    scrubbed = scrub_text(before + secret + after)
    assert secret not in scrubbed
    # Nor most of it: no six digits in a row survive anywhere, whatever surrounds the secret,
    digits_left = scrubbed.replace(REDACTED, "|")
    assert not re.search(r"\d{6}", digits_left)
    # and a grouped number does not survive as its groups.
    compact = re.sub(r"[ \-+]", "", secret)
    if len(compact) >= 11:
        assert compact not in re.sub(r"[ \-+]", "", digits_left)


class _Unsanitisable(ReadableSpan):
    """A span whose attributes cannot be read: sanitising it raises."""

    @property
    def attributes(self) -> Any:
        raise RuntimeError("broken span")


def test_the_exporter_drops_a_span_it_cannot_sanitise_and_exports_the_rest() -> None:
    inner = InMemorySpanExporter()
    exporter = RedactingSpanExporter(inner)
    good = ReadableSpan(name="work", attributes={"essc.note": f"id {ID_NUMBER}"})
    assert exporter.export([_Unsanitisable(name="broken"), good]) is SpanExportResult.SUCCESS
    (exported,) = inner.get_finished_spans()
    assert exported.name == "work"
    assert exported.attributes == {"essc.note": f"id {REDACTED}"}
