"""Traces: a server span per RPC, a span per platform attempt, the trace carried to the
platform, errors recorded as errors, outages as traces of their own, no personal data."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_trace_id

from essc.gateway.v1 import gateway_pb2 as pb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.testing import FakeClock
from essc_gateway.tracing import TracingConfig, build_tracer_provider
from tests.conftest import GatewayUnderTest, make_config, running_gateway
from tests.gateway.flows import adult, identity, live_sample, verify


@dataclass
class Traced:
    gw: GatewayUnderTest
    spans: InMemorySpanExporter


@pytest.fixture
async def traced(
    platform: SimulatedPlatform, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Traced]:
    async with running_gateway(platform, clock, make_config(tmp_path / "traced.db")) as gw:
        yield Traced(gw, gw.spans)


def named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_an_rpc_and_its_platform_attempts_form_one_trace_carried_to_the_platform(
    traced: Traced, platform: SimulatedPlatform, population: Population, clock: FakeClock
) -> None:
    await verify(traced.gw, adult(population, clock.now().date()), traced.gw.a)
    spans = traced.spans.get_finished_spans()
    [server] = named(spans, "essc.gateway.v1.GatewayService/Verify")
    assert server.kind is SpanKind.SERVER
    assert server.attributes
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["server.address"] == "127.0.0.1"
    assert server.attributes["server.port"] == traced.gw.gateway.port
    attempts = named(spans, "essc.platform.v1.IdentityService/CheckReal")
    assert len(attempts) == 3
    assert {a.kind for a in attempts} == {SpanKind.CLIENT}
    assert {(a.attributes or {}).get("rpc.service") for a in attempts} == {
        "essc.platform.v1.IdentityService"
    }
    assert {a.parent.span_id for a in attempts if a.parent} == {server.context.span_id}
    trace_id = server.context.trace_id
    assert {a.context.trace_id for a in attempts} == {trace_id}
    assert all(a.attributes and a.attributes["essc.attempt"] == 1 for a in attempts)
    received = platform.received_traceparents["/essc.platform.v1.IdentityService/CheckRealName"]
    assert received.split("-")[1] == format_trace_id(trace_id)


async def test_an_error_sent_with_rich_details_is_recorded_as_an_error(
    traced: Traced, population: Population, clock: FakeClock
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await traced.gw.stub.Verify(pb.VerifyRequest(), metadata=traced.gw.a)
    spans = traced.spans.get_finished_spans()
    [server] = named(spans, "essc.gateway.v1.GatewayService/Verify")
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes
    assert server.attributes["essc.clause"] == "BANK"
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # Its liability record's write is a span of the same trace.
    [write] = named(spans, "store _append_batch")
    assert write.context.trace_id == server.context.trace_id


async def test_an_outage_is_a_trace_linked_to_the_requests_it_affected(
    traced: Traced, population: Population, clock: FakeClock
) -> None:
    gw = traced.gw
    scenario = ppb.FaultScenario(seed=1)
    scenario.rules.add(
        method="/essc.platform.v1.IdentityService/CheckRealName", outage=ppb.OutageFault()
    )
    await gw.control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))
    person = adult(population, clock.now().date())
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError):
            await verify(gw, person, gw.a)
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    clock.advance(timedelta(seconds=2))  # past a breaker's pause, if one opened
    assert (await verify(gw, person, gw.a)).verified
    spans = traced.spans.get_finished_spans()
    [outage] = named(spans, "outage CheckRealName")
    assert outage.status.status_code is StatusCode.ERROR
    assert outage.parent is None  # a trace of its own
    assert outage.attributes
    assert outage.attributes["essc.outage.clause"] == "A16(1)(b)"
    failed_servers = {
        s.context.span_id
        for s in named(spans, "essc.gateway.v1.GatewayService/Verify")
        if s.status.status_code is StatusCode.ERROR
    }
    linked = {link.context.span_id for link in outage.links}
    assert linked
    assert linked <= failed_servers


async def test_no_personal_data_leaves_in_a_span(
    traced: Traced, population: Population, clock: FakeClock
) -> None:
    person = adult(population, clock.now().date())
    await verify(traced.gw, person, traced.gw.a)
    bad = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number="nope",
        biometric_sample=live_sample(person),
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await traced.gw.stub.Verify(bad, metadata=traced.gw.a)
    dumped = "".join(s.to_json() for s in traced.spans.get_finished_spans())
    for secret in (
        person.name,
        person.id_number,
        person.mobile_phone,
        person.mobile_phone.removeprefix("+86"),
        person.card_number,
    ):
        assert secret not in dumped


@pytest.mark.parametrize("success_ratio", [0.0, 1.0])
async def test_attempt_spans_are_made_for_the_traces_that_are_exported(
    platform: SimulatedPlatform,
    population: Population,
    clock: FakeClock,
    tmp_path: Path,
    success_ratio: float,
) -> None:
    """A request's platform attempts become spans (children of its server span, with their
    real times) when its trace is exported: always when it failed, by the sampled share
    when it succeeded."""
    path = tmp_path / "traces.jsonl"
    provider = build_tracer_provider(TracingConfig(jsonl_path=path, success_ratio=success_ratio))
    config = make_config(tmp_path / "t.db")
    async with running_gateway(platform, clock, config, tracer_provider=provider) as gw:
        person = adult(population, clock.now().date())
        assert (await verify(gw, person, gw.a)).verified
        scenario = ppb.FaultScenario(seed=1)
        scenario.rules.add(
            method="/essc.platform.v1.IdentityService/CheckRealName", outage=ppb.OutageFault()
        )
        await gw.control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario))
        with pytest.raises(grpc.aio.AioRpcError):
            await verify(gw, person, gw.a)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    servers = [s for s in lines if s["name"] == "essc.gateway.v1.GatewayService/Verify"]
    assert len(servers) == (2 if success_ratio else 1)
    for server in servers:
        span_id = server["context"]["span_id"]
        attempts = [
            s for s in lines if s.get("parent_id") == span_id and s["kind"] == "SpanKind.CLIENT"
        ]
        assert {s["name"].rsplit("/", 1)[1] for s in attempts} >= {"CheckRealName"}
        assert all(server["start_time"] <= a["start_time"] <= a["end_time"] for a in attempts)
    failed = servers[-1]
    failed_attempts = [
        s
        for s in lines
        if s.get("parent_id") == failed["context"]["span_id"]
        and s["name"].endswith("CheckRealName")
    ]
    assert failed_attempts
    assert all(s["status"]["status_code"] == "ERROR" for s in failed_attempts)
