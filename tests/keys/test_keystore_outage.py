"""The root keystore failing while the gateway runs. A lost HSM session (an HSM restart) is
logged in again by itself: a change that needs the root still succeeds. An HSM that stops
answering (here SoftHSM2's token storage taken away, in a gateway process of its own):
health turns NOT_SERVING within a probe, and requests keep the keys they hold in memory."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import grpc
import pytest

from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.app import LIVENESS_SERVICE
from essc_gateway.bench.processes import free_port
from essc_gateway.crypto import token_digest
from essc_gateway.keys import pkcs11_root
from essc_gateway.simplatform import SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import make_config, running_gateway
from tests.hsm import SOFTHSM_MODULE, new_root


@pytest.mark.hsm
async def test_a_lost_hsm_session_is_logged_in_again_by_itself(
    platform: SimulatedPlatform, clock: FakeClock, database: StoreLocation
) -> None:
    settings = new_root()
    async with running_gateway(platform, clock, make_config(database, root_key=settings)) as gw:
        # The HSM restarts: every session of the process is gone.
        token = pkcs11_root._Token._open[(settings.module, settings.token_label)]
        await token.call(token.session.close)
        rotated = await gw.operator.RotateKey(
            opb.RotateKeyRequest(bank_id="bank-a", purpose=opb.KEY_PURPOSE_BANK),
            metadata=gw.ops,
        )
        assert rotated.key.key_id == "bank-a/BANK/v2"
        assert gw.gateway.keys is not None
        await gw.gateway.keys.root.probe()


async def _run(*command: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.mark.hsm
@pytest.mark.timeout(120)
async def test_an_hsm_that_stops_answering_turns_health_not_serving(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    pin = secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}
    env["SOFTHSM2_CONF"] = str(conf)
    code, said = await _run(
        shutil.which("softhsm2-util") or "softhsm2-util", "--init-token", "--free",
        "--label", "outage", "--so-pin", secrets.token_hex(8), "--pin", pin, env=env,
    )  # fmt: skip
    assert code == 0, said
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"banks": [{"bank_id": "b", "token_sha256": token_digest("t")}]}))
    port, health_port = free_port(), free_port()
    env.update(
        {
            "ESSC_PKCS11_MODULE": SOFTHSM_MODULE,
            "ESSC_PKCS11_TOKEN_LABEL": "outage",
            "ESSC_PKCS11_PIN": pin,
            "ESSC_CONFIG": str(config),
            "ESSC_DATABASE": str(tmp_path / "gateway.db"),
            "ESSC_STATE_DIR": str(tmp_path),
            "ESSC_HEALTH_PORT": str(health_port),
            "ESSC_TRACES_FILE": "",
        }
    )
    cli = (sys.executable, "-m", "essc_gateway.cli")
    code, said = await _run(*cli, "keys", "init-root", env=env)
    assert code == 0, said
    gateway = await asyncio.create_subprocess_exec(
        *cli, "run", "--port", str(port), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    health = (*cli, "health", "--address", f"127.0.0.1:{health_port}")
    try:
        assert gateway.stdout is not None
        while b"essc-gateway listening" not in await asyncio.wait_for(
            gateway.stdout.readline(), 60
        ):
            pass
        assert (await _run(*health, env=env))[1].strip().endswith("SERVING")
        tokens.rename(tmp_path / "tokens-away")  # the HSM's storage is gone
        loop = asyncio.get_running_loop()
        until = loop.time() + 30
        while True:
            code, said = await _run(*health, env=env)
            if said.strip().endswith("NOT_SERVING"):
                break
            assert loop.time() < until, said
            await asyncio.sleep(0.5)
        # Not a reason to restart it (a restart needs the HSM): the liveness name stays up.
        code, said = await _run(*health, "--service", LIVENESS_SERVICE, env=env)
        assert (code, said.strip().split(": ")[-1]) == (0, "SERVING"), said
        # Requests keep the keys held in memory: the gateway still answers on its port.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
    finally:
        gateway.terminate()
        await asyncio.wait_for(gateway.wait(), 30)
