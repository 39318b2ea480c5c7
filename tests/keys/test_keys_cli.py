"""`essc-gateway keys`: the custodian provisions the root key on the HSM token once, then
reads every key version of every bank (no key material)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from essc_gateway.app import Gateway
from essc_gateway.simplatform import SimulatedPlatform
from essc_gateway.testing import FakeClock
from tests.conftest import make_config, root_key_path
from tests.hsm import new_root


async def _keys(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "essc_gateway.cli", "keys", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.mark.hsm
async def test_init_root_makes_the_root_key_once(tmp_path: Path) -> None:
    settings = new_root(with_root_key=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}
    env.update(
        {
            "ESSC_PKCS11_MODULE": settings.module,
            "ESSC_PKCS11_TOKEN_LABEL": settings.token_label,
            "ESSC_PKCS11_KEY_LABEL": settings.key_label,
            "ESSC_PKCS11_PIN": settings.pin,
            "ESSC_DATABASE": str(tmp_path / "gateway.db"),
        }
    )
    assert await _keys("init-root", env=env) == (0, f"root key {settings.key_label!r} made\n")
    code, said = await _keys("init-root", env=env)
    assert (code, "already on the token" in said) == (0, True)
    assert settings.pin not in said


async def test_status_lists_every_key_version_and_no_material(
    platform: SimulatedPlatform, clock: FakeClock, tmp_path: Path
) -> None:
    database = tmp_path / "gateway.db"
    gateway = Gateway(make_config(database), platform.address, clock)
    await gateway.start()
    await gateway.stop(0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"banks": [{"bank_id": "bank-a", "certificate_subject": "a"}]}))
    env.update(
        {
            "ESSC_ROOT_KEY_FILE": str(root_key_path(database)),
            "ESSC_DATABASE": str(database),
            "ESSC_CONFIG": str(config),
        }
    )
    code, said = await _keys("status", env=env)
    assert code == 0, said
    lines = said.splitlines()[1:]
    assert sorted(line.split()[0] for line in lines) == sorted(
        f"{bank}/{purpose}/v1"
        for bank in ("bank-a", "bank-b")
        for purpose in ("BANK", "DATA", "LOOKUP", "TOKENS")
    )
    assert all("AES256_GCM_HMAC_SHA256" in line and "ACTIVE" in line for line in lines)

    rotate = ("rotate", "--bank", "bank-a", "--purpose", "DATA", "--operator", "alice")
    assert await _keys(*rotate, env=env) == (
        0,
        "bank-a/DATA/v2 seals from now on (AES256_GCM_HMAC_SHA256)\n",
    )
    code, said = await _keys("status", env=env)
    assert "bank-a/DATA/v2" in said
    assert "by alice" in said
    assert "job bank-a/DATA/v2: 0/0 holder keys moved" in said
    retire = (
        "retire",
        "--bank",
        "bank-a",
        "--purpose",
        "DATA",
        "--version",
        "2",
        "--operator",
        "bob",
    )
    code, said = await _keys(*retire, env=env)
    assert code == 1
    assert "the version in use" in said
