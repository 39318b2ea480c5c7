"""A thin typed async client of the gateway, for bank systems and operators.

    async with GatewayClient(ClientConfig("gw.example:443", ca_file=..., cert_file=...,
                                          key_file=...)) as client:
        reply = await client.verify(pb.VerifyRequest(...))

Requests and responses are the generated `essc.gateway.v1` messages; failures raise the
`GatewayCallError` tree of `essc_gateway_client.errors`.
"""

from __future__ import annotations

from essc_gateway_client.channel import ClientConfig, open_channel, service_config
from essc_gateway_client.client import GatewayClient, OperatorClient, new_idempotency_key
from essc_gateway_client.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    GatewayCallError,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)

__all__ = [
    "Aborted",
    "AlreadyExists",
    "ClientConfig",
    "DeadlineExceeded",
    "FailedPrecondition",
    "GatewayCallError",
    "GatewayClient",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OperatorClient",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
    "new_idempotency_key",
    "open_channel",
    "service_config",
]
