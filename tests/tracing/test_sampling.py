"""Tail sampling keeps every trace with an error, whole, and a share of the others."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from essc_gateway.tracing.sampling import TailSamplingProcessor


def traced(ratio: float) -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TailSamplingProcessor([SimpleSpanProcessor(exporter)], ratio))
    return provider.get_tracer("test"), exporter


def names(exporter: InMemorySpanExporter) -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


def request(tracer: trace.Tracer, *, root_error: bool = False, child_error: bool = False) -> None:
    with tracer.start_as_current_span("root") as root:
        with tracer.start_as_current_span("child") as child:
            if child_error:
                child.set_status(Status(StatusCode.ERROR))
        if root_error:
            root.set_status(Status(StatusCode.ERROR))


def test_a_failed_request_is_kept_whole_whatever_the_ratio() -> None:
    tracer, exporter = traced(0.0)
    request(tracer, root_error=True)
    assert names(exporter) == ["child", "root"]


def test_an_error_in_a_child_keeps_the_whole_trace() -> None:
    tracer, exporter = traced(0.0)
    request(tracer, child_error=True)
    assert names(exporter) == ["child", "root"]


def test_successful_traces_follow_the_ratio() -> None:
    none, dropped = traced(0.0)
    every, kept = traced(1.0)
    for _ in range(20):
        request(none)
        request(every)
    assert dropped.get_finished_spans() == ()
    assert len(kept.get_finished_spans()) == 40


def test_the_choice_depends_on_the_trace_id_alone() -> None:
    first, first_spans = traced(0.5)
    second, second_spans = traced(0.5)
    kept_by_first = set()
    kept_by_second = set()
    for n in range(400):
        trace_id = (n * 0x9E3779B97F4A7C15) & ((1 << 128) - 1) or 1
        parent = trace.set_span_in_context(
            NonRecordingSpan(SpanContext(trace_id, 1, is_remote=True, trace_flags=TraceFlags(1)))
        )
        for tracer in (first, second):
            tracer.start_span("root", context=parent).end()  # a local root: remote parent
    kept_by_first = {s.context.trace_id for s in first_spans.get_finished_spans() if s.context}
    kept_by_second = {s.context.trace_id for s in second_spans.get_finished_spans() if s.context}
    assert kept_by_first == kept_by_second
    assert 140 < len(kept_by_first) < 260  # about half of 400


def test_a_span_ending_after_its_root_follows_the_decision() -> None:
    tracer, exporter = traced(0.0)
    with tracer.start_as_current_span("root") as root:
        late = tracer.start_span("late")
        root.set_status(Status(StatusCode.ERROR))
    late.end()
    assert names(exporter) == ["root", "late"]
    tracer, exporter = traced(0.0)
    with tracer.start_as_current_span("root"):
        late = tracer.start_span("late")
    late.end()
    assert names(exporter) == []
