"""The tracer provider, its destinations, and what the gRPC instrumentation records."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from essc_gateway.tracing import (
    DEFAULT_TRACES_FILE,
    REDACTED,
    JsonLinesSpanExporter,
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
        assert all(isinstance(p, RedactingSpanProcessor) for p in processors)
        inner = [p.inner for p in processors]
        assert [type(p) for p in inner] == [BatchSpanProcessor, BatchSpanProcessor, type(extra)]
        assert inner[2] is extra
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


# --- what the gRPC aio server instrumentation records ----------------------------------------


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class Traced:
    call: Callable[[bytes], grpc.aio.UnaryUnaryCall[bytes, bytes]]
    exporter: InMemorySpanExporter
    set_code: bool
    code: grpc.StatusCode

    async def server_span(self) -> ReadableSpan:
        await eventually(lambda: len(self.exporter.get_finished_spans()) == 1)
        (span,) = self.exporter.get_finished_spans()
        assert span.kind is SpanKind.SERVER
        return span


def _identity(data: bytes) -> bytes:
    return data


@pytest.fixture
async def traced(request: pytest.FixtureRequest) -> AsyncIterator[Traced]:
    code, set_code, mark_error = request.param
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(
        TracingConfig(jsonl_path=None), [SimpleSpanProcessor(exporter)]
    )

    async def refuse(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if request == b"ok":
            return b"ok"
        if mark_error:
            # The workaround for client errors: mark the server span (current here) by hand.
            trace.get_current_span().set_status(StatusCode.ERROR, code.name)
        if set_code:
            context.set_code(code)  # what the gateway's interceptor does before aborting
        status = status_pb2.Status(code=code.value[0], message=f"holder {ID_NUMBER} refused")
        await context.abort_with_status(rpc_status.to_status(status))
        raise AssertionError("abort_with_status returned")

    handler = grpc.method_handlers_generic_handler(
        "test.Svc",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                refuse, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    interceptor = aio_server_interceptor(tracer_provider=provider)  # type: ignore[no-untyped-call]
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(
        "/test.Svc/Call", request_serializer=_identity, response_deserializer=_identity
    )
    try:
        yield Traced(call, exporter, set_code, code)
    finally:
        await channel.close()
        await server.stop(None)
        provider.shutdown()


async def call_refused(traced: Traced) -> ReadableSpan:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await traced.call(b"refuse me")
    assert raised.value.code() is traced.code
    return await traced.server_span()


def assert_only_abort_error_types(span: ReadableSpan) -> None:
    # Every abort raises AbortError through the interceptor: it is recorded twice (once by the
    # instrumentation, once by the SDK's span context manager), message and stack dropped here.
    assert [event.name for event in span.events] == ["exception", "exception"]
    for event in span.events:
        assert event.attributes == {"exception.type": "grpc._cython.cygrpc.AbortError"}


SET_CODE_INVALID_ARGUMENT = (grpc.StatusCode.INVALID_ARGUMENT, True, False)
NO_SET_CODE = (grpc.StatusCode.INVALID_ARGUMENT, False, False)
SET_CODE_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, True, False)
MARKED_ERROR_THEN_SET_CODE = (grpc.StatusCode.INVALID_ARGUMENT, True, True)


@pytest.mark.parametrize("traced", [SET_CODE_INVALID_ARGUMENT], indirect=True)
async def test_set_code_then_abort_with_status_records_the_code_but_leaves_status_unset(
    traced: Traced,
) -> None:
    span = await call_refused(traced)
    # OTel semantic conventions: a server span is an ERROR only for UNKNOWN,
    # DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS. Client errors
    # such as INVALID_ARGUMENT leave the status UNSET; the code is in rpc.grpc.status_code.
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert_only_abort_error_types(span)


@pytest.mark.parametrize("traced", [NO_SET_CODE], indirect=True)
async def test_abort_with_status_alone_is_recorded_as_ok(traced: Traced) -> None:
    span = await call_refused(traced)
    # The wrapper does not override abort_with_status: the code attribute stays at OK (0).
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert_only_abort_error_types(span)


@pytest.mark.parametrize("traced", [SET_CODE_UNAVAILABLE], indirect=True)
async def test_set_code_of_a_server_fault_marks_the_span_as_error(traced: Traced) -> None:
    span = await call_refused(traced)
    assert span.status.status_code is StatusCode.ERROR
    # The description comes from the code's own text, not from the aborted status message.
    assert span.status.description == "StatusCode.UNAVAILABLE:unavailable"
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert ID_NUMBER not in span.to_json()
    assert_only_abort_error_types(span)


@pytest.mark.parametrize("traced", [MARKED_ERROR_THEN_SET_CODE], indirect=True)
async def test_an_error_status_set_by_hand_survives_set_code(traced: Traced) -> None:
    span = await call_refused(traced)
    # set_code then tries to set UNSET, which the SDK ignores once a status is set.
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "INVALID_ARGUMENT"
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize("traced", [SET_CODE_INVALID_ARGUMENT], indirect=True)
async def test_a_successful_call_keeps_the_grpc_attributes(traced: Traced) -> None:
    assert await traced.call(b"ok") == b"ok"
    span = await traced.server_span()
    assert span.name == "/test.Svc/Call"
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()
    assert span.attributes is not None
    assert {key: span.attributes[key] for key in ("rpc.system", "rpc.service", "rpc.method")} == {
        "rpc.system": "grpc",
        "rpc.service": "test.Svc",
        "rpc.method": "Call",
    }
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes["net.peer.ip"] == "127.0.0.1"
