"""The channel to the national platform: plaintext, or TLS with this gateway's client
certificate (mTLS) when the platform's CA is configured; rebuilt when those files change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import grpc

from essc_gateway.config import PlatformTls
from essc_gateway.transport.certificates import (
    CertificateError,
    KeyPair,
    file_signature,
    read_ca,
)

log = logging.getLogger(__name__)

PLATFORM_CHANNEL = (
    # Our own retry policy counts and budgets every attempt: no hidden ones in grpc-core.
    ("grpc.enable_retries", 0),
    # Reconnect quickly once the platform is back, instead of grpc's default backoff (1-120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
OLD_CHANNEL_GRACE = 30.0
"""Seconds the replaced channel's calls in flight may take to finish before it closes."""


def plaintext_platform_channel(address: str) -> grpc.aio.Channel:
    """The channel when no platform TLS is configured (`PlatformTlsWatch` makes TLS ones)."""
    return grpc.aio.insecure_channel(address, options=PLATFORM_CHANNEL)


def _read(tls: PlatformTls) -> tuple[bytes, KeyPair | None]:
    roots = read_ca(tls.ca_file)
    if tls.cert_file is None or tls.key_file is None:
        return roots, None
    return roots, KeyPair.read(tls.cert_file, tls.key_file)


def _secure_channel(
    address: str, tls: PlatformTls, roots: bytes, pair: KeyPair | None
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=roots,
        private_key=pair.private_key if pair else None,
        certificate_chain=pair.certificate_chain if pair else None,
    )
    options: list[tuple[str, int | str]] = list(PLATFORM_CHANNEL)
    if tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(address, credentials, options=options)


class PlatformTlsWatch:
    """Looks at the platform TLS files every `interval` seconds; when they changed and make
    a usable pair, a new channel replaces the old one (grpc's channel credentials are fixed
    once made), and the old one closes once its calls in flight are done."""

    def __init__(self, address: str, tls: PlatformTls, interval: float) -> None:
        self._address, self._tls, self._interval = address, tls, interval
        self._files = [p for p in (tls.ca_file, tls.cert_file, tls.key_file) if p is not None]
        # Taken before the files are read: a rotation between the two is seen at the next look.
        self._signature = file_signature(self._files)
        roots, pair = _read(tls)
        self.channel = _secure_channel(address, tls, roots, pair)
        """The channel the gateway starts with."""
        self.expiry: datetime | None = pair.expiry if pair else None
        self._replace: Callable[[grpc.aio.Channel], grpc.aio.Channel] | None = None
        self.reloads = 0
        self._closing: set[asyncio.Task[None]] = set()

    def on_reload(self, replace: Callable[[grpc.aio.Channel], grpc.aio.Channel]) -> None:
        """`replace(new)` puts a reloaded channel in use and returns the one it replaces."""
        self._replace = replace

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.check()
            except Exception:  # a failed look must not end the watch; the next one retries
                log.exception("platform TLS files could not be checked")

    def check(self) -> bool:
        """One look at the files; True when a new channel now serves."""
        signature = file_signature(self._files)
        if signature == self._signature:
            return False
        if self._replace is None:
            return False
        self._signature = signature
        try:
            roots, pair = _read(self._tls)
        except CertificateError as error:
            log.warning("platform TLS not reloaded, the previous channel serves on: %s", error)
            return False
        old = self._replace(_secure_channel(self._address, self._tls, roots, pair))
        task = asyncio.create_task(old.close(grace=OLD_CHANNEL_GRACE))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self.expiry = pair.expiry if pair else None
        self.reloads += 1
        log.info("platform TLS reloaded; a new channel serves")
        return True

    async def close(self) -> None:
        """Closes replaced channels still finishing their calls."""
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
