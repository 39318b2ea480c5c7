"""The tracer provider and its destinations."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from essc_gateway import __version__
from essc_gateway.tracing import (
    DEFAULT_TRACES_FILE,
    REDACTED,
    JsonLinesSpanExporter,
    RedactingSpanExporter,
    RedactingSpanProcessor,
    TracingConfig,
    build_span_processors,
    build_tracer_provider,
    tracing_config_from_env,
)

ID_NUMBER = "11010519491231002X"
MOBILE = "13800138000"


# --- configuration ----------------------------------------------------------------------------


def test_config_from_an_empty_environment_writes_the_default_file_only() -> None:
    assert tracing_config_from_env({}) == TracingConfig(
        otlp_endpoint=None, jsonl_path=DEFAULT_TRACES_FILE, service_name="essc-gateway"
    )


def test_config_from_the_environment() -> None:
    config = tracing_config_from_env(
        {"ESSC_OTLP_ENDPOINT": " collector:4317 ", "ESSC_TRACES_FILE": "/var/log/essc/t.jsonl"}
    )
    assert config.otlp_endpoint == "collector:4317"
    assert config.jsonl_path == Path("/var/log/essc/t.jsonl")


def test_empty_values_disable_the_collector_and_the_file() -> None:
    config = tracing_config_from_env({"ESSC_OTLP_ENDPOINT": "", "ESSC_TRACES_FILE": ""})
    assert config.otlp_endpoint is None
    assert config.jsonl_path is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"otlp_endpoint": " "}, id="blank-endpoint"),
        pytest.param({"service_name": ""}, id="blank-service-name"),
    ],
)
def test_invalid_config_is_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TracingConfig(**bad)  # type: ignore[arg-type]


# --- the provider -------------------------------------------------------------------------------


@dataclass
class Built:
    provider: TracerProvider
    exporter: InMemorySpanExporter


@pytest.fixture
def build() -> Iterator[Callable[[TracingConfig], Built]]:
    providers: list[TracerProvider] = []

    def _build(config: TracingConfig) -> Built:
        exporter = InMemorySpanExporter()
        provider = build_tracer_provider(config, [SimpleSpanProcessor(exporter)])
        providers.append(provider)
        return Built(provider, exporter)

    yield _build
    for provider in providers:
        provider.shutdown()


def test_extra_processors_receive_redacted_spans(
    build: Callable[[TracingConfig], Built],
) -> None:
    global_provider = trace.get_tracer_provider()
    built = build(TracingConfig(jsonl_path=None, service_name="essc-test"))

    with built.provider.get_tracer("test").start_as_current_span(
        f"issue for {ID_NUMBER}", attributes={"essc.phone": MOBILE, "holder.name": "Zhang San"}
    ):
        pass

    (span,) = built.exporter.get_finished_spans()
    assert span.name == f"issue for {REDACTED}"
    assert span.attributes == {"essc.phone": REDACTED}
    assert span.resource.attributes["service.name"] == "essc-test"
    assert trace.get_tracer_provider() is global_provider, "the global provider was replaced"


def test_the_json_lines_file_holds_redacted_spans_after_force_flush(
    build: Callable[[TracingConfig], Built], tmp_path: Path
) -> None:
    path = tmp_path / "var" / "traces.jsonl"
    built = build(TracingConfig(jsonl_path=path))
    tracer = built.provider.get_tracer("test")
    with (
        tracer.start_as_current_span("outer", attributes={"essc.note": f"id {ID_NUMBER}"}),
        tracer.start_as_current_span("inner") as inner,
    ):
        inner.add_event("sms", {"essc.code": "code 123456"})
        inner.set_status(StatusCode.ERROR, f"phone {MOBILE} refused")

    assert built.provider.force_flush(5_000)

    text = path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["name"] for line in lines] == ["inner", "outer"]
    assert lines[1]["attributes"] == {"essc.note": f"id {REDACTED}"}
    assert lines[0]["events"][0]["attributes"] == {"essc.code": f"code {REDACTED}"}
    assert lines[0]["status"]["description"] == f"phone {REDACTED} refused"
    assert lines[0]["parent_id"] == lines[1]["context"]["span_id"]
    for secret in (ID_NUMBER, MOBILE, "123456"):
        assert secret not in text


def test_every_destination_is_behind_redaction(tmp_path: Path) -> None:
    extra = SimpleSpanProcessor(InMemorySpanExporter())
    processors = build_span_processors(
        TracingConfig(otlp_endpoint="127.0.0.1:4317", jsonl_path=tmp_path / "t.jsonl"), [extra]
    )
    try:
        otlp, jsonl, added = processors
        # The configured destinations sanitise on their export thread; an added processor
        # gets sanitised copies as spans end.
        for batch, exporter in ((otlp, OTLPSpanExporter), (jsonl, JsonLinesSpanExporter)):
            assert isinstance(batch, BatchSpanProcessor)
            assert isinstance(batch.span_exporter, RedactingSpanExporter)
            assert isinstance(batch.span_exporter.inner, exporter)
        assert isinstance(added, RedactingSpanProcessor)
        assert added.inner is extra
    finally:
        for processor in processors:
            processor.shutdown()


# --- the JSON-lines exporter ------------------------------------------------------------------


def finished_spans(count: int) -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for number in range(count):
        with provider.get_tracer("test").start_as_current_span(f"span-{number}"):
            pass
    provider.shutdown()
    return exporter.get_finished_spans()


def test_json_lines_exporter_appends_one_parseable_line_per_span(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "traces.jsonl"
    exporter = JsonLinesSpanExporter(path)
    assert not path.parent.exists(), "the file is opened lazily"

    spans = finished_spans(3)
    assert exporter.export(spans[:2]) is SpanExportResult.SUCCESS
    assert exporter.export(spans[2:]) is SpanExportResult.SUCCESS
    # Flushed per batch: readable before shutdown.
    names = [json.loads(line)["name"] for line in path.read_text("utf-8").splitlines()]
    assert names == ["span-0", "span-1", "span-2"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len(path.read_text("utf-8").splitlines()) == 3


def test_json_lines_exporter_reports_a_file_it_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    exporter = JsonLinesSpanExporter(tmp_path / "not-a-directory" / "traces.jsonl")
    assert exporter.export(finished_spans(1)) is SpanExportResult.FAILURE
    exporter.shutdown()


def test_json_lines_hold_what_the_sdk_would_write_for_each_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer", attributes={"n": 1, "seq": ("a", "b")}) as outer:
        link = trace.Link(outer.get_span_context(), {"k": "v"})
        inner = tracer.start_span("inner", links=[link])
        inner.add_event("event", {"x": 2.5})
        inner.set_status(trace.Status(StatusCode.ERROR, "failed"))
        inner.end()
    spans = exporter.get_finished_spans()
    path = tmp_path / "traces.jsonl"
    writer = JsonLinesSpanExporter(path)
    assert writer.export(spans) is SpanExportResult.SUCCESS
    writer.shutdown()
    written = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert written == [json.loads(span.to_json(indent=None)) for span in spans]


def test_otel_service_name_is_honoured_and_spans_carry_the_version(
    build: Callable[[TracingConfig], Built],
) -> None:
    config = tracing_config_from_env({"OTEL_SERVICE_NAME": "essc-gateway-bank-a"})
    assert config.service_name == "essc-gateway-bank-a"
    built = build(replace(config, jsonl_path=None))
    with built.provider.get_tracer("t").start_as_current_span("work"):
        pass
    [span] = built.exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "essc-gateway-bank-a"
    assert span.resource.attributes["service.version"] == __version__
