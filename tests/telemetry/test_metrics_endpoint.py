"""Metrics as a bank's platform team scrapes them: a real gateway, a real HTTP scrape of
`/metrics`, the series dashboards and alerts use (RPC durations by method and code, calls in
flight, platform attempts, breakers, open outages, windows, the queue, ledger appends, the
store's connections), linted by Prometheus's own promtool."""

from __future__ import annotations

import asyncio
import re
import shutil
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from opentelemetry.metrics import NoOpMeterProvider

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc
from essc.platform.v1 import platform_pb2 as ppb
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig, TlsConfig
from essc_gateway.dev_pki import make_pki
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.telemetry.metrics_export import MetricsExport, MetricsSettings
from essc_gateway.testing import FakeClock
from essc_gateway.transport.certificates import certificate_expiry
from tests.conftest import BANK_A_TOKEN, make_config
from tests.gateway.flows import adult, identity, live_sample

BANK_A = (("authorization", f"Bearer {BANK_A_TOKEN}"),)


@pytest.fixture
async def served(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> AsyncIterator[tuple[Gateway, MetricsExport, int]]:
    export = MetricsExport(MetricsSettings(port=0))
    gateway = Gateway(
        make_config(database), platform.address, clock, meter_provider=export.provider
    )
    port = await gateway.start()
    yield gateway, export, port
    await gateway.stop(0)
    export.shutdown()


async def scrape(export: MetricsExport) -> str:
    reply = await asyncio.to_thread(
        urllib.request.urlopen, f"http://{export.address}/metrics", timeout=10
    )
    return str(reply.read().decode())


def lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(rf"{name}[{{ ]", line)]


def value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])


async def test_a_scrape_has_the_series_dashboards_and_alerts_use(
    served: tuple[Gateway, MetricsExport, int],
    platform: SimulatedPlatform,
    population: Population,
    clock: FakeClock,
) -> None:
    gateway, export, port = served
    control_channel = grpc.aio.insecure_channel(platform.control_address)
    control = platform_pb2_grpc.ControlServiceStub(control_channel)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        async def verify(n: int) -> None:
            person = adult(population, clock.now().date(), skip=n)
            await stub.Verify(
                pb.VerifyRequest(
                    applicant=identity(person),
                    physical_card_number=person.card_number,
                    biometric_sample=live_sample(person),
                ),
                metadata=BANK_A,
                timeout=5,
            )

        await verify(0)  # OK, three platform calls
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Verify(pb.VerifyRequest(), metadata=BANK_A)  # INVALID_ARGUMENT
        scenario = json_format.ParseDict(
            {"seed": 1, "rules": [{"method": "*", "outage": {}}]}, ppb.FaultScenario()
        )
        await control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))
        for n in range(1, 5):  # an outage opens after three failures in a row
            with pytest.raises(grpc.aio.AioRpcError):
                await verify(n)
    await control_channel.close()
    await gateway.settle_ledger()
    text = await scrape(export)

    served_calls = lines(text, "rpc_server_call_duration_seconds_count")
    by_code = {
        re.search(r'rpc_grpc_status_code="(\d+)"', s).group(1): value(s)  # type: ignore[union-attr]
        for s in served_calls
        if 'rpc_method="Verify"' in s
    }
    assert by_code == {"0": 1.0, "3": 1.0, "14": 4.0}  # OK, INVALID_ARGUMENT, UNAVAILABLE
    assert [value(s) for s in lines(text, "rpc_server_active_calls")] == [0.0]
    attempts = lines(text, "rpc_client_call_duration_seconds_count")
    assert any(
        'rpc_method="CheckRealName"' in s and 'rpc_grpc_status_code="0"' in s for s in attempts
    )
    assert any('rpc_grpc_status_code="14"' in s for s in attempts)
    assert any(value(s) == 1.0 for s in lines(text, "essc_outages_open"))
    assert lines(text, "essc_platform_breaker_state")
    assert sum(value(s) for s in lines(text, "essc_ledger_append_batch_size_count")) >= 1
    assert lines(text, "essc_ledger_append_duration_seconds_bucket")
    assert {
        re.search(r'kind="(\w+)"', s).group(1)
        for s in lines(text, "essc_maintenance_windows_active")
    } == {  # type: ignore[union-attr]
        "BANK",
        "PLATFORM",
    }
    assert lines(text, "essc_forward_queue_depth")
    [tasks] = lines(text, "essc_runtime_tasks")
    assert value(tasks) > 0  # the gateway's own tasks, at least
    assert lines(text, "essc_store_pool_connections")
    # No personal data in any label: only methods, codes, operations, kinds, states.
    assert "110105" not in text
    # Prometheus's own linter accepts the exposition.
    promtool = shutil.which("promtool")
    assert promtool is not None, "Debian's prometheus is needed (scripts/ensure-services.sh)"
    checked = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    said, _ = await checked.communicate(text.encode())
    assert checked.returncode == 0, said.decode()


def test_with_no_endpoint_and_no_collector_the_instruments_cost_nothing() -> None:
    export = MetricsExport(MetricsSettings())
    assert export.address is None
    assert isinstance(export.provider, NoOpMeterProvider)
    export.shutdown()


async def test_the_server_certificates_expiry_is_a_gauge(
    platform: SimulatedPlatform, clock: FakeClock, tmp_path: Path
) -> None:
    ca, server, _ = make_pki(tmp_path, ("bank-c-client",), valid_for=timedelta(days=30))
    config = make_config(
        tmp_path / "tls.db",
        banks=(BankConfig("bank-c", certificate_subject="bank-c-client"),),
        tls=TlsConfig(cert_file=server.cert, key_file=server.key, client_ca_file=ca),
    )
    export = MetricsExport(MetricsSettings(port=0))
    gateway = Gateway(config, platform.address, clock, meter_provider=export.provider)
    await gateway.start()
    try:
        [line] = lines(await scrape(export), "essc_tls_certificate_expiry_seconds")
    finally:
        await gateway.stop(0)
        export.shutdown()
    assert 'certificate="server"' in line
    expected = (certificate_expiry(server.cert) - clock.now()).total_seconds()
    assert value(line) == pytest.approx(expected, abs=2)
