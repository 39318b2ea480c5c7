"""Client configuration and the one place a channel to the gateway is opened.

Retries happen inside grpcio, driven by the service config built here (`retryPolicy`, gRFC
A6): only RPCs that are safe to send twice are retried, only on UNAVAILABLE, and the
per-call deadline covers every attempt.

Maintenance windows and open circuits are not waited out: the gateway answers UNAVAILABLE
with a RetryInfo to the window's end and a `grpc-retry-pushback-ms: -1` trailer, which tells
grpcio's retry policy (gRFC A6; it does not read RetryInfo) not to re-send. The call raises
`Unavailable` at once, with `is_maintenance` and `retry_after`; scheduling a later attempt is
the caller's decision.

The bank's bearer token (development) is sent as per-call `authorization` metadata by the
clients (`GatewayClient`, `OperatorClient`), over TLS or plaintext alike (grpc's call
credentials would refuse a plaintext development channel); plaintext is allowed only to a
loopback target unless `allow_insecure_token` says otherwise.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import grpc

from essc.gateway.v1 import gateway_pb2, operator_pb2

GATEWAY_SERVICE = "essc.gateway.v1.GatewayService"
OPERATOR_SERVICE = "essc.gateway.v1.OperatorService"

GATEWAY_RPCS = frozenset(gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods_by_name)
OPERATOR_RPCS = frozenset(
    operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].methods_by_name
)

# Safe to send twice: reads, and writes that carry an idempotency key. Not RequestSmsCode
# (a second SMS) nor Authenticate (a failed attempt counts towards the holder's lockout).
RETRIED_GATEWAY_RPCS = ("Verify", "Query", "GetIssueStatus", "Issue", "ChangePassword", "Terminate")
# Operator reads. Announce, amend, cancel, declare and key changes carry no key: a retry
# could duplicate (a second rotation).
RETRIED_OPERATOR_RPCS = (
    "ListMaintenance",
    "ListCircuits",
    "ListIncidents",
    "GetLiabilityReport",
    "GetMonthlyStatement",
    "VerifyLedger",
    "GetKeyStatus",
)

RETRY_POLICY: Mapping[str, Any] = MappingProxyType(
    {
        "maxAttempts": 3,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ClientConfig:
    """How to reach the gateway and as whom. Validated on construction."""

    target: str
    """`host:port` of the gateway (any gRPC target name, e.g. `dns:///gw.example:443`)."""

    token: str | None = None
    """The bank's (or operator's) bearer token, for development gateways."""

    ca_file: Path | None = None
    """PEM bundle of CAs trusted for the gateway's certificate. Setting it (or `cert_file`)
    makes the channel TLS; without it the system roots are used."""

    cert_file: Path | None = None
    """PEM client certificate chain: the bank's identity under mTLS. Needs `key_file`."""

    key_file: Path | None = None
    """PEM private key of `cert_file`."""

    server_name: str | None = None
    """Name to check the gateway's certificate against instead of the target's host."""

    default_timeout: float = 10.0
    """Deadline in seconds of every call, over all its attempts, unless overridden."""

    timeouts: Mapping[str, float] = field(default_factory=dict)
    """Per-RPC deadlines in seconds by method name (e.g. `{"Issue": 20.0}`); a `timeout=`
    argument on a call overrides both."""

    retries: bool = True
    """Let grpcio retry UNAVAILABLE for the RPCs that are safe to repeat (see module doc)."""

    keepalive_time: float | None = None
    """Seconds between HTTP/2 pings while calls are open; None sends none. The gateway uses
    grpc's server defaults, which tolerate a ping per 5 minutes only without data."""

    keepalive_timeout: float = 20.0
    """Seconds to wait for a ping's answer before the connection is deemed dead."""

    max_send_message_length: int = 4 * _MIB
    """Largest request in bytes."""

    max_receive_message_length: int = 16 * _MIB
    """Largest response in bytes: liability reports and statements can be large."""

    allow_insecure_token: bool = False
    """Send `token` over plaintext to a non-loopback target. Never in production."""

    def __post_init__(self) -> None:
        if not self.target:
            raise ValueError("target is required")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.default_timeout <= 0 or any(t <= 0 for t in self.timeouts.values()):
            raise ValueError("timeouts must be positive")
        unknown = set(self.timeouts) - GATEWAY_RPCS - OPERATOR_RPCS
        if unknown:
            raise ValueError(f"timeouts for unknown RPCs: {sorted(unknown)}")
        if self.keepalive_time is not None and self.keepalive_time <= 0:
            raise ValueError("keepalive_time must be positive")
        if (
            self.token is not None
            and not self.uses_tls
            and not self.allow_insecure_token
            and not is_loopback(self.target)
        ):
            raise ValueError(
                "refusing to send a bearer token in plaintext to a non-loopback target; "
                "use TLS or set allow_insecure_token"
            )
        # A read-only view: the config is shared between clients and must not change under them.
        object.__setattr__(self, "timeouts", MappingProxyType(dict(self.timeouts)))

    @property
    def uses_tls(self) -> bool:
        """Whether the channel is TLS (server-authenticated, and mTLS with a client cert)."""
        return self.ca_file is not None or self.cert_file is not None

    def timeout_for(self, rpc: str) -> float:
        """The default deadline in seconds of `rpc` (a method name, e.g. `Verify`)."""
        return self.timeouts.get(rpc, self.default_timeout)


def is_loopback(target: str) -> bool:
    """Whether a gRPC target names this machine (loopback address, `localhost` or unix)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    host = target.removeprefix("dns:").removeprefix("ipv4:").removeprefix("ipv6:").lstrip("/")
    if host.startswith("["):  # [::1]:port
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_config(*, retries: bool = True) -> str:
    """The JSON service config: a retryPolicy for the RPCs safe to repeat, or none."""
    if not retries:
        return json.dumps({})
    names = [{"service": GATEWAY_SERVICE, "method": m} for m in RETRIED_GATEWAY_RPCS]
    names += [{"service": OPERATOR_SERVICE, "method": m} for m in RETRIED_OPERATOR_RPCS]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": dict(RETRY_POLICY)}]})


def channel_options(config: ClientConfig) -> list[tuple[str, str | int]]:
    """grpc channel arguments for `config`."""
    options: list[tuple[str, str | int]] = [
        ("grpc.enable_retries", int(config.retries)),
        ("grpc.service_config", service_config(retries=config.retries)),
        # Resolver-supplied configs must not replace the retry policy chosen here.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_send_message_length", config.max_send_message_length),
        ("grpc.max_receive_message_length", config.max_receive_message_length),
    ]
    if config.keepalive_time is not None:
        options += [
            ("grpc.keepalive_time_ms", int(config.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
        ]
    if config.server_name is not None:
        options.append(("grpc.ssl_target_name_override", config.server_name))
    return options


def channel_credentials(config: ClientConfig) -> grpc.ChannelCredentials:
    """TLS credentials from the config's PEM files (mTLS when a client cert is given)."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(config.ca_file),
        private_key=_read(config.key_file),
        certificate_chain=_read(config.cert_file),
    )


def open_channel(
    config: ClientConfig, *, interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None
) -> grpc.aio.Channel:
    """A channel to the gateway: TLS when configured, retries per the service config.

    Call it with a running event loop (grpc.aio binds the channel to it). `interceptors`
    (e.g. OpenTelemetry's `aio_client_interceptors()`) run once per call, above the retries;
    pass the channel to a client with `channel=`.
    """
    options = channel_options(config)
    if config.uses_tls:
        return grpc.aio.secure_channel(
            config.target, channel_credentials(config), options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(config.target, options, interceptors=interceptors)


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()
