"""Traces to an OTLP collector over TLS (ESSC_OTLP_CA_FILE): a real gRPC collector with a
certificate, the gateway's tracer provider exporting to it, redacted as always."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from essc_gateway.bench.processes import free_port
from essc_gateway.tracing.setup import build_tracer_provider, tracing_config_from_env
from tests.certs import make_pki


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.names: list[str] = []
        self.received = threading.Event()

    def Export(  # noqa: N802 - the OTLP service's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.names += [span.name for span in scope.spans]
        self.received.set()
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[Collector, int, Path]]:
    ca, server_pem, _ = make_pki(tmp_path, ())
    collected = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collected, server)
    port = free_port()
    credentials = grpc.ssl_server_credentials(
        [(server_pem.key.read_bytes(), server_pem.cert.read_bytes())]
    )
    server.add_secure_port(f"127.0.0.1:{port}", credentials)
    server.start()
    yield collected, port, ca
    server.stop(0)


def test_spans_reach_a_tls_collector_redacted(collector: tuple[Collector, int, Path]) -> None:
    collected, port, ca = collector
    config = tracing_config_from_env(
        {
            "ESSC_OTLP_ENDPOINT": f"localhost:{port}",  # the name its certificate carries
            "ESSC_OTLP_CA_FILE": str(ca),
            "ESSC_TRACES_FILE": "",
            "ESSC_TRACE_SUCCESS_RATIO": "1",
        }
    )
    provider = build_tracer_provider(config)
    with provider.get_tracer("test").start_as_current_span("issue for 11010519491231002X"):
        pass
    provider.force_flush()
    assert collected.received.wait(10)
    provider.shutdown()
    assert collected.names
    assert all("11010519491231002X" not in name for name in collected.names)
