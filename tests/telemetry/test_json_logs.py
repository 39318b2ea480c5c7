"""Access log lines as JSON: one object per line with the call's trace and span, its bank,
RPC, code, reason and duration, and no personal data, whatever the request carried."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import format_trace_id

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.simplatform import Population
from essc_gateway.telemetry.json_logs import JsonLineFormatter
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import adult, identity
from tests.polling import eventually


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("essc_gateway.access")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not .level: it clears the loggers' cache
    yield out
    logger.removeHandler(handler)
    logger.setLevel(previous)


async def test_an_access_line_is_json_with_its_trace_and_no_personal_data(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, access_lines: io.StringIO
) -> None:
    person = adult(population, clock.now().date())
    bad = pb.VerifyRequest(applicant=identity(person))  # no card number: refused
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.Verify(bad, metadata=gw.a)

    def server_spans() -> list[ReadableSpan]:
        return [
            s
            for s in gw.spans.get_finished_spans()
            if s.name == "essc.gateway.v1.GatewayService/Verify"
        ]

    async def ended() -> bool:  # the server span ends just after the answer is sent
        return bool(server_spans())

    await eventually(ended)
    [line] = [json.loads(text) for text in access_lines.getvalue().splitlines()]
    [server] = server_spans()
    assert line["trace_id"] == format_trace_id(server.context.trace_id)
    assert len(line["span_id"]) == 16
    assert (line["bank"], line["rpc"], line["code"]) == ("bank-a", "Verify", "INVALID_ARGUMENT")
    assert line["reason"]
    assert line["duration_ms"] >= 0
    assert line["level"] == "INFO"
    text = access_lines.getvalue()
    for secret in (person.id_number, person.name, person.mobile_phone, person.card_number):
        assert secret not in text


def test_a_careless_message_is_scrubbed() -> None:
    record = logging.LogRecord(
        "essc_gateway.x",
        logging.ERROR,
        __file__,
        1,
        "holder %s failed",
        ("11010519491231002X",),
        None,
    )
    line = json.loads(JsonLineFormatter().format(record))
    assert "11010519491231002X" not in line["message"]
    assert "trace_id" not in line  # no call being served
