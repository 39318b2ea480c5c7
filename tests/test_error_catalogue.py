"""The ErrorInfo reason catalogue is a contract: the gateway's reasons, the proto enum that
generated clients switch on, and the documented table are the same set."""

from __future__ import annotations

import re
from pathlib import Path

import grpc

from essc.gateway.v1 import errors_pb2
from essc_gateway.errors import ERROR_DOMAIN, ErrorReason
from essc_gateway_client.errors import ERROR_DOMAIN as CLIENT_ERROR_DOMAIN
from essc_gateway_client.errors import GatewayCallError

ROOT = Path(__file__).resolve().parents[1]


def test_the_gateway_the_proto_enum_and_the_docs_list_the_same_reasons() -> None:
    gateway = {reason.value for reason in ErrorReason}
    proto = {
        name.removeprefix("ERROR_REASON_")
        for name in errors_pb2.ErrorReason.DESCRIPTOR.values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    documented = set(
        re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "docs" / "errors.md").read_text(), re.M)
    )
    assert gateway == proto == documented


def test_the_client_decodes_each_reason_of_the_gateway_to_its_enum_value() -> None:
    assert CLIENT_ERROR_DOMAIN == ERROR_DOMAIN
    for reason in ErrorReason:
        error = GatewayCallError(
            grpc.StatusCode.UNAVAILABLE, "", reason=reason.value, domain=ERROR_DOMAIN
        )
        assert errors_pb2.ErrorReason.Name(error.reason_value) == f"ERROR_REASON_{reason.value}"
    newer = GatewayCallError(grpc.StatusCode.INTERNAL, "", reason="NEWER", domain=ERROR_DOMAIN)
    assert newer.reason_value == errors_pb2.ERROR_REASON_UNSPECIFIED
    foreign = GatewayCallError(
        grpc.StatusCode.INTERNAL, "", reason="INVALID_FIELD", domain="elsewhere"
    )
    assert foreign.reason_value == errors_pb2.ERROR_REASON_UNSPECIFIED
