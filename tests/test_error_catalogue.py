"""The ErrorInfo reason catalogue is a contract: the gateway's reasons, the proto enum that
generated clients switch on, and the documented table are the same set."""

from __future__ import annotations

import re
from pathlib import Path

from essc.gateway.v1 import errors_pb2
from essc_gateway.errors import ErrorReason

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
