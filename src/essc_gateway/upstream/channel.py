"""The channel to the national platform: plaintext, or TLS with this gateway's client
certificate (mTLS) when the platform's CA is configured."""

from __future__ import annotations

import grpc

from essc_gateway.config import PlatformTls

PLATFORM_CHANNEL = (
    # Our own retry policy counts and budgets every attempt: no hidden ones in grpc-core.
    ("grpc.enable_retries", 0),
    # Reconnect quickly once the platform is back, instead of grpc's default backoff (1-120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def platform_channel(address: str, tls: PlatformTls | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(address, options=PLATFORM_CHANNEL)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_file.read_bytes(),
        private_key=tls.key_file.read_bytes() if tls.key_file else None,
        certificate_chain=tls.cert_file.read_bytes() if tls.cert_file else None,
    )
    options: list[tuple[str, int | str]] = list(PLATFORM_CHANNEL)
    if tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(address, credentials, options=options)
