"""A bounded fuzz run through a real gateway (issue 10, defect 2): random bytes and mutated
valid messages for every GatewayService method; no INTERNAL, UNKNOWN, dropped connection
or unanswered call, and the server still serves afterwards. `make fuzz` runs it long."""

from __future__ import annotations

import random

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.fuzzing import GATEWAY_METHODS, fuzz, inputs, mutate
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import rich

PER_METHOD = 60


async def test_a_bounded_fuzz_run_finds_nothing(gw: GatewayUnderTest) -> None:
    report = await fuzz(gw.channel, gw.a, PER_METHOD * len(GATEWAY_METHODS), seed=20261204)

    assert report.findings == []
    assert report.inputs == PER_METHOD * len(GATEWAY_METHODS)
    assert set(report.by_method) == {m.name for m in GATEWAY_METHODS}
    assert report.codes["INVALID_ARGUMENT"] > 0
    assert not {"INTERNAL", "UNKNOWN"} & set(report.codes)
    # Still serving: a well-formed request gets its ordinary answer.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.GetIssueStatus(
            pb.GetIssueStatusRequest(idempotency_key="f" * 32), metadata=gw.a
        )
    assert rich(raised.value).reason == "ISSUE_NOT_FOUND"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=128), method=st.sampled_from(GATEWAY_METHODS))
async def test_any_bytes_get_a_status_of_the_gateway(
    gw: GatewayUnderTest, body: bytes, method: object
) -> None:
    call = gw.channel.unary_unary(f"/essc.gateway.v1.GatewayService/{method.name}")  # type: ignore[attr-defined]
    failure: grpc.aio.AioRpcError | None = None
    try:
        await call(body, metadata=gw.a, timeout=10)
    except grpc.aio.AioRpcError as error:
        failure = error
    if failure is not None:  # a refusal of the gateway's own, with its reason
        assert failure.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        assert rich(failure).reason


def test_inputs_are_reproducible_from_their_seed_and_cover_every_method() -> None:
    first = [next(inputs(random.Random(5))) for _ in range(1)]
    source_a, source_b = inputs(random.Random(5)), inputs(random.Random(5))
    a = [next(source_a) for _ in range(50)]
    b = [next(source_b) for _ in range(50)]
    assert a == b
    assert first[0] == a[0]
    assert {m.name for m, _ in a} == {m.name for m in GATEWAY_METHODS}
    assert mutate(b"abcdef", random.Random(1)) == mutate(b"abcdef", random.Random(1))
