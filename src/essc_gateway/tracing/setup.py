"""Builds the tracer provider: where spans go, each destination behind redaction (A13(1))."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from essc_gateway import __version__
from essc_gateway.telemetry.otlp import otlp_credentials
from essc_gateway.tracing.exporters import JsonLinesSpanExporter
from essc_gateway.tracing.redaction import RedactingSpanExporter, RedactingSpanProcessor
from essc_gateway.tracing.sampling import TailSamplingProcessor

__all__ = [
    "DEFAULT_TRACES_FILE",
    "TracingConfig",
    "build_span_processors",
    "build_tracer_provider",
    "exports_without_error",
    "tracing_config_from_env",
]

DEFAULT_TRACES_FILE = Path("var/traces.jsonl")

_ENV_OTLP_ENDPOINT = "ESSC_OTLP_ENDPOINT"
_ENV_TRACES_FILE = "ESSC_TRACES_FILE"
_ENV_SUCCESS_RATIO = "ESSC_TRACE_SUCCESS_RATIO"


@dataclass(frozen=True)
class TracingConfig:
    """Where finished spans are sent. Every destination receives redacted copies only.

    Invalid values raise `ValueError` (not `config.ConfigError`, so that `config` can import
    this module without a cycle; `ConfigError` is a `ValueError` too).
    """

    otlp_endpoint: str | None = None
    """OTLP/gRPC collector address (`host:port`); None: no collector."""
    otlp_ca_file: Path | None = None
    """The collector's CA: TLS to it; None: plaintext."""
    jsonl_path: Path | None = DEFAULT_TRACES_FILE
    """File that receives one JSON line per span (relative to the working directory);
    None: no file."""
    service_name: str = "essc-gateway"
    """The `service.name` resource attribute on every span."""
    success_ratio: float = 0.1
    """Share of traces without an error that are exported; every trace with an error is
    (see `sampling`). 1 keeps them all."""

    def __post_init__(self) -> None:
        if self.otlp_endpoint is not None and not self.otlp_endpoint.strip():
            raise ValueError("otlp_endpoint must be None or a non-empty host:port")
        if self.jsonl_path is not None and not str(self.jsonl_path).strip():
            raise ValueError("jsonl_path must be None or a file path")
        if not self.service_name.strip():
            raise ValueError("service_name must not be empty")
        if not 0.0 <= self.success_ratio <= 1.0:
            raise ValueError("success_ratio must be between 0 and 1")


def tracing_config_from_env(environ: Mapping[str, str] | None = None) -> TracingConfig:
    """Reads `ESSC_OTLP_ENDPOINT` (unset or empty: no collector), `ESSC_TRACES_FILE`
    (unset: `var/traces.jsonl`; empty: no file) and `ESSC_TRACE_SUCCESS_RATIO` (unset: 0.1)
    from `environ` (default: `os.environ`)."""
    env = os.environ if environ is None else environ
    endpoint = env.get(_ENV_OTLP_ENDPOINT, "").strip() or None
    ratio = float(env.get(_ENV_SUCCESS_RATIO, "").strip() or TracingConfig.success_ratio)
    # OpenTelemetry's own variable, as every other service of the bank's honours it.
    name = env.get("OTEL_SERVICE_NAME", "").strip() or TracingConfig.service_name
    ca_file = env.get("ESSC_OTLP_CA_FILE", "").strip()
    traces_file = env.get(_ENV_TRACES_FILE)
    return TracingConfig(
        otlp_endpoint=endpoint,
        otlp_ca_file=Path(ca_file) if ca_file else None,
        jsonl_path=(
            DEFAULT_TRACES_FILE
            if traces_file is None
            else (Path(traces_file.strip()) if traces_file.strip() else None)
        ),
        success_ratio=ratio,
        service_name=name,
    )


def build_span_processors(
    config: TracingConfig, extra_processors: Sequence[SpanProcessor] = ()
) -> list[SpanProcessor]:
    """The configured destinations, each a batch processor over a `RedactingSpanExporter`
    (spans are sanitised on its export thread, in batches, off the request path), followed
    by `extra_processors`, each wrapped in a `RedactingSpanProcessor`."""
    exporters: list[SpanExporter] = []
    if config.otlp_endpoint is not None:
        credentials = otlp_credentials(config.otlp_ca_file)
        exporters.append(
            OTLPSpanExporter(
                endpoint=config.otlp_endpoint,
                insecure=credentials is None,
                credentials=credentials,
            )
        )
    if config.jsonl_path is not None:
        exporters.append(JsonLinesSpanExporter(config.jsonl_path))
    # Redaction in front of every destination: none can be added without it.
    processors: list[SpanProcessor] = [
        BatchSpanProcessor(RedactingSpanExporter(exporter)) for exporter in exporters
    ]
    processors.extend(RedactingSpanProcessor(processor) for processor in extra_processors)
    return processors


class SampledTracerProvider(TracerProvider):
    """A tracer provider whose destinations are tail-sampled: `exports` tells, from a trace
    id, whether a trace without an error will be exported (deferred spans use it)."""

    def __init__(
        self, exports: Callable[[int], bool], resource: Resource, shutdown_on_exit: bool
    ) -> None:
        super().__init__(resource=resource, shutdown_on_exit=shutdown_on_exit)
        self.exports = exports


def exports_without_error(provider: object) -> Callable[[int], bool]:
    """Whether `provider` exports a trace that holds no error, by its id: the sampler's
    answer for ours, always for any other (a test's in-memory provider keeps everything)."""
    if isinstance(provider, SampledTracerProvider):
        return provider.exports
    return _always


def _always(trace_id: int) -> bool:
    return True


def build_tracer_provider(
    config: TracingConfig, extra_processors: Sequence[SpanProcessor] = ()
) -> TracerProvider:
    """Builds a tracer provider whose every span processor is behind redaction.

    The global provider is never set: pass the result to the Gateway. Spans sent to the
    configured destinations are tail-sampled (`sampling`). The caller owns it and must call
    `shutdown()` on exit to export the last batch; no `atexit` hook is registered.

    Args:
        config: Destinations and service name.
        extra_processors: More processors (tests pass an in-memory one); also redacted.
    """
    sampler = TailSamplingProcessor(build_span_processors(config), config.success_ratio)
    resource = Resource.create({SERVICE_NAME: config.service_name, SERVICE_VERSION: __version__})
    # Extra (local) processors see every span: then every trace counts as exported.
    exports = _always if extra_processors else sampler.sampled
    provider = SampledTracerProvider(exports, resource=resource, shutdown_on_exit=False)
    # Sampling applies to the destinations; extra (local) processors see every span.
    provider.add_span_processor(sampler)
    for processor in build_span_processors(TracingConfig(jsonl_path=None), extra_processors):
        provider.add_span_processor(processor)
    return provider
