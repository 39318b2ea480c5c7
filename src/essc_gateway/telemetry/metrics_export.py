"""Where the gateway's metrics go: a Prometheus `/metrics` endpoint (plaintext HTTP on the
admin port, for the bank's scraper) and, when a collector is configured, OTLP (the same
endpoint setting as traces). Each gateway has a registry of its own, so that several in one
process (tests, a bench) never mix their series."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from opentelemetry import metrics as metrics_api
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from prometheus_client import CollectorRegistry, start_http_server

from essc_gateway import __version__
from essc_gateway.telemetry.otlp import otlp_credentials

OTLP_EXPORT_INTERVAL_MS = 15_000


@dataclass(frozen=True)
class MetricsSettings:
    host: str = "127.0.0.1"
    port: int | None = None
    """The `/metrics` port; None: no Prometheus endpoint; 0: any free port."""
    otlp_endpoint: str | None = None
    """OTLP/gRPC collector (`host:port`); None: no OTLP export."""
    otlp_ca_file: Path | None = None
    """The collector's CA: TLS to it; None: plaintext."""
    service_name: str = "essc-gateway"


class MetricsExport:
    """The meter provider the gateway's instruments report to, and its endpoints."""

    def __init__(self, settings: MetricsSettings) -> None:
        self._registry = CollectorRegistry()
        readers: list[MetricReader] = []
        if settings.port is not None:
            readers.append(PrometheusMetricReader(registry=self._registry))
        if settings.otlp_endpoint is not None:
            credentials = otlp_credentials(settings.otlp_ca_file)
            exporter = OTLPMetricExporter(
                endpoint=settings.otlp_endpoint,
                insecure=credentials is None,
                credentials=credentials,
            )
            readers.append(
                PeriodicExportingMetricReader(
                    exporter, export_interval_millis=OTLP_EXPORT_INTERVAL_MS
                )
            )
        resource = Resource.create(
            {SERVICE_NAME: settings.service_name, SERVICE_VERSION: __version__}
        )
        # Nothing reads them: no-op instruments, which cost nothing on the request path.
        self.provider: metrics_api.MeterProvider = (
            MeterProvider(metric_readers=readers, resource=resource)
            if readers
            else metrics_api.NoOpMeterProvider()
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.address: str | None = None
        if settings.port is not None:
            self._server, self._thread = start_http_server(
                settings.port, settings.host, self._registry
            )
            self.address = f"{settings.host}:{self._server.server_port}"

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if isinstance(self.provider, MeterProvider):
            self.provider.shutdown()
