"""How the gateway speaks to an OTLP collector (traces and metrics alike): plaintext, or TLS
with the collector's CA when `ESSC_OTLP_CA_FILE` names one."""

from __future__ import annotations

from pathlib import Path

import grpc


def otlp_credentials(ca_file: Path | None) -> grpc.ChannelCredentials | None:
    """The channel credentials of the collector; None: plaintext."""
    if ca_file is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
