"""The image's install step, run here as the Dockerfile runs it (no Docker engine on these
machines): wheels built from the source, installed with no network into a clean virtualenv
by the image's own script; the result starts and answers its health check. And the
Dockerfile keeps the properties a platform team checks: two stages, a non-root user, the
same script, no source install in the final stage."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from essc_gateway.bench.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _run(*command: str, cwd: Path = ROOT) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.timeout(300)
async def test_the_images_install_step_gives_a_gateway_that_starts(tmp_path: Path) -> None:
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    await _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
        "./clients/python", ".",
    )  # fmt: skip
    await _run(str(ROOT / "scripts" / "install-wheels.sh"), str(wheels), str(venv))
    gateway = venv / "bin" / "essc-gateway"
    assert re.fullmatch(r"essc-gateway \S+\n", await _run(str(gateway), "--version"))
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        str(gateway), "run", "--dev", "--var-dir", str(tmp_path / "var"), "--port", str(port),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        while b"essc-gateway listening" not in await asyncio.wait_for(server.stdout.readline(), 60):
            pass
        said = await _run(str(gateway), "health", "--address", f"127.0.0.1:{port}")
        assert said.strip().endswith("SERVING")
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


def test_the_dockerfile_builds_in_two_stages_and_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM ", dockerfile, re.MULTILINE)
    assert len(stages) == 2
    final = dockerfile.split("\nFROM ")[-1]
    assert "install-wheels.sh /wheels" in final
    assert "pip install ." not in final
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert "HEALTHCHECK" in final
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored  # everything is left out but what the build copies
    copied = {"!pyproject.toml", "!README.md", "!src/", "!clients/python/"}
    assert copied | {"!scripts/install-wheels.sh"} <= set(ignored)
    assert "COPY clients/python ./clients/python" in dockerfile
