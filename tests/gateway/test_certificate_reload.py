"""Certificates rotate without a restart: the bank-facing port serves a replaced certificate
(and trusts a replaced client CA) from the next connection; the platform channel presents a
replaced client certificate from the watcher's next look. A broken rotation (a key that is not
the certificate's) is refused and the previous pair serves on."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2_grpc
from essc_gateway.app import Gateway
from essc_gateway.config import BankConfig, PlatformTls, TlsConfig
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.simplatform.server import ServerTls
from essc_gateway.testing import FakeClock
from essc_gateway.transport.certificates import certificate_expiry
from tests.certs import make_pki
from tests.conftest import BANK_A_TOKEN, make_config
from tests.gateway.flows import adult, verify

BANK_A = (("authorization", f"Bearer {BANK_A_TOKEN}"),)
TARGET_NAME = (("grpc.ssl_target_name_override", "localhost"),)


class _Stubbed:
    def __init__(self, stub: gateway_pb2_grpc.GatewayServiceAsyncStub) -> None:
        self.stub = stub


def _replace(source: Path, destination: Path) -> None:
    """As a rotation tool does: the new file written aside, then renamed over the old."""
    staged = destination.with_suffix(".new")
    shutil.copyfile(source, staged)
    os.replace(staged, destination)


def _credentials(ca: Path, client_cert: Path, client_key: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client_key.read_bytes(),
        certificate_chain=client_cert.read_bytes(),
    )


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while not await check():
        assert loop.time() < until, "not within the time allowed"
        await asyncio.sleep(0.05)


async def test_the_bank_port_serves_a_rotated_certificate_and_client_ca(
    platform: SimulatedPlatform,
    population: Population,
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live, old, new = tmp_path / "live", tmp_path / "old", tmp_path / "new"
    for directory in (live, old, new):
        directory.mkdir()
    old_ca, old_server, old_clients = make_pki(old, ("bank-c-client",))
    new_ca, new_server, new_clients = make_pki(new, ("bank-c-client",), timedelta(days=90))
    files = TlsConfig(live / "server.pem", live / "server.key", live / "client-ca.pem")
    for source, destination in (
        (old_server.cert, files.cert_file),
        (old_server.key, files.key_file),
        (old_ca, files.client_ca_file),
    ):
        shutil.copyfile(source, destination)
    config = make_config(
        tmp_path / "tls.db",
        banks=(BankConfig("bank-c", certificate_subject="bank-c-client"),),
        tls=files,
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    person = adult(population, clock.now().date())

    async def verified_with(ca: Path, client_cert: Path, client_key: Path) -> bool:
        """True: verified over a new connection; False: its handshake was refused."""
        credentials = _credentials(ca, client_cert, client_key)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, TARGET_NAME) as ch:
            call = verify(
                _Stubbed(gateway_pb2_grpc.GatewayServiceStub(ch)),  # type: ignore[arg-type]
                person,
                (),
            )
            try:
                return bool((await call).verified)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False

    old_client = old_clients["bank-c-client"]
    new_client = new_clients["bank-c-client"]
    try:
        assert await verified_with(old_ca, old_client.cert, old_client.key)
        assert not await verified_with(new_ca, new_client.cert, new_client.key)

        _replace(new_server.cert, files.cert_file)
        _replace(new_server.key, files.key_file)
        _replace(new_ca, files.client_ca_file)
        # The next connection's handshake reads the new files: no restart, no signal.
        assert await verified_with(new_ca, new_client.cert, new_client.key)
        assert not await verified_with(old_ca, old_client.cert, old_client.key)
        assert gateway.server_certificates is not None
        assert gateway.server_certificates.expiry == certificate_expiry(new_server.cert)

        # A broken rotation: the old key under the new certificate. Refused, logged by file
        # name, and the new pair keeps serving.
        with caplog.at_level(logging.WARNING):
            _replace(old_server.key, files.key_file)
            assert await verified_with(new_ca, new_client.cert, new_client.key)
        assert any("is not the key of" in r.getMessage() for r in caplog.records)
        assert gateway.server_certificates.reloads == 1
    finally:
        await gateway.stop(0)


async def test_the_platform_channel_presents_a_rotated_client_certificate(
    population: Population, clock: FakeClock, tmp_path: Path
) -> None:
    ca, server, clients = make_pki(tmp_path, ("gateway-client",))
    platform = SimulatedPlatform(population)
    await platform.start(tls=ServerTls(server.cert, server.key, ca))
    # The gateway starts with a client certificate of another CA: the platform refuses it.
    (tmp_path / "stranger").mkdir()
    _, _, strangers = make_pki(tmp_path / "stranger", ("gateway-client",))
    live_cert, live_key = tmp_path / "client.pem", tmp_path / "client.key"
    shutil.copyfile(strangers["gateway-client"].cert, live_cert)
    shutil.copyfile(strangers["gateway-client"].key, live_key)
    config = make_config(
        tmp_path / "gateway.db",
        platform_tls=PlatformTls(ca, live_cert, live_key, server_name="localhost"),
        tls_reload_interval=0.05,
    )
    gateway = Gateway(config, platform.address, clock)
    port = await gateway.start()
    try:
        watch = gateway.platform_tls_watch
        assert watch is not None
        _replace(clients["gateway-client"].cert, live_cert)
        _replace(clients["gateway-client"].key, live_key)

        async def reloaded() -> bool:
            return watch.reloads == 1

        await _eventually(reloaded)
        assert watch.expiry == certificate_expiry(clients["gateway-client"].cert)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = _Stubbed(gateway_pb2_grpc.GatewayServiceStub(channel))
            person = adult(population, clock.now().date())
            reply = await verify(stub, person, BANK_A)  # type: ignore[arg-type]
            assert reply.verified
    finally:
        await gateway.stop(0)
        await platform.stop(0)
