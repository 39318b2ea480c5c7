"""The client SDK is a distribution of its own (essc-gateway-client): lower bounds only, the
bank-facing stubs and the typed client and nothing of the server; installed alone in a clean
virtualenv, it calls a running gateway and decodes its rich errors."""

from __future__ import annotations

import asyncio
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from essc_gateway.app import Gateway
from essc_gateway.simplatform import SimulatedPlatform
from essc_gateway.testing import FakeClock
from tests.conftest import BANK_A_TOKEN, make_config

ROOT = Path(__file__).resolve().parents[2]

CALLER = """
import asyncio, sys
from essc.gateway.v1 import errors_pb2, gateway_pb2
from essc_gateway_client import ClientConfig, GatewayClient, InvalidArgument

async def main() -> None:
    async with GatewayClient(ClientConfig(sys.argv[1], token=sys.argv[2])) as client:
        try:
            await client.verify(gateway_pb2.VerifyRequest())
        except InvalidArgument as error:
            assert error.reason_value == errors_pb2.ERROR_REASON_INVALID_FIELD, error
            print("refused", sorted(error.field_violations))
    try:
        import essc_gateway  # noqa: F401
    except ImportError:
        print("no server")

asyncio.run(main())
"""


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.timeout(300)
async def test_the_client_installs_alone_and_calls_the_gateway(
    platform: SimulatedPlatform, clock: FakeClock, tmp_path: Path
) -> None:
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    pip_wheel = (sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels))
    await _run(*pip_wheel, "--no-deps", "./clients/python")
    [wheel] = wheels.glob("essc_gateway_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    assert requires, "the client names its dependencies"
    # Lower bounds; the only upper bound allowed is protobuf's next major version (it checks
    # generated code at import).
    bounds = {
        (Requirement(r).name, spec.operator, spec.version)
        for r in requires
        for spec in Requirement(r).specifier
    }
    assert {b for b in bounds if b[1] != ">="} == {("protobuf", "<", "8")}, requires
    assert {b[0] for b in bounds if b[1] == ">="} == {Requirement(r).name for r in requires}
    assert {n.split("/")[0] for n in names} == {
        "essc",
        "essc_gateway_client",
        wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info",
    }
    assert not [n for n in names if n.startswith(("essc/platform", "essc/__init__"))]

    # Its dependencies resolved on their own (from the index), not the server's pins.
    await _run(*pip_wheel, f"--find-links={wheels}", str(wheel))
    await _run(sys.executable, "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    await _run(pip, "install", "--quiet", "--no-index", "--find-links", str(wheels), str(wheel))
    gateway = Gateway(make_config(tmp_path / "gateway.db"), platform.address, clock)
    port = await gateway.start()
    try:
        said = await _run(
            str(venv / "bin" / "python"), "-c", CALLER, f"127.0.0.1:{port}", BANK_A_TOKEN
        )
    finally:
        await gateway.stop(0)
    assert "refused ['applicant', 'biometric_sample', 'physical_card_number']" in said, said
    assert "no server" in said
