"""The benchmark's servers, each in a process of its own (so that its CPU time is its own):
the bare echo service, the simulated platform, and the gateway (one or several workers)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from essc_gateway.bench.measured import ProcessUsage, usage_of
from essc_gateway.crypto import token_digest
from essc_gateway.keys.root import FileRoot
from essc_gateway.keys.suites import Suite

_READY_TIMEOUT = 90.0
_STOP_TIMEOUT = 15.0
BANK_ID = "bench-bank"


class BenchSetupError(Exception):
    """A server of the benchmark did not start."""


@dataclass
class Server:
    """A started server process; `address` is where it listens."""

    name: str
    process: asyncio.subprocess.Process
    address: str
    log_file: Path
    control_address: str | None = None

    def usage(self) -> ProcessUsage:
        """CPU so far, memory and open files of the process and its children."""
        root = psutil.Process(self.process.pid)
        return usage_of([root, *root.children(recursive=True)])

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass(frozen=True)
class GatewaySecrets:
    """What the benchmark's gateway is configured with, and the tokens to call it."""

    environment: dict[str, str]
    bank_token: str
    operator_token: str


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that must share a fixed one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 right now (replicas of a
    local cluster listen on consecutive ports)."""
    for _ in range(100):
        first = free_port()
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def gateway_secrets(directory: Path, suite: Suite = Suite.AES256_GCM_HMAC_SHA256) -> GatewaySecrets:
    """A fresh root key, one bank with no practical rate limit (the benchmark measures the gateway,
    not its shedding) and one operator, written to `directory`."""
    bank_token, operator_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    config = {
        "banks": [
            {
                "bank_id": BANK_ID,
                "token_sha256": token_digest(bank_token),
                "rate_limit": {"per_second": 1e6, "burst": 1e6},
                "suite": suite.name,
            }
        ],
        "operators": [
            {
                "operator_id": "bench-operator",
                "token_sha256": token_digest(operator_token),
                "roles": ["operator", "auditor"],
            }
        ],
    }
    config_file = directory / "bench-config.json"
    config_file.write_text(json.dumps(config))

    root_key = directory / "root.key"
    FileRoot.open(root_key, create=True)
    environment = {"ESSC_CONFIG": str(config_file), "ESSC_ROOT_KEY_FILE": str(root_key)}
    return GatewaySecrets(environment, bank_token, operator_token)


async def _spawn(
    name: str,
    arguments: Sequence[str],
    directory: Path,
    ready_prefix: str,
    environment: dict[str, str] | None = None,
) -> tuple[asyncio.subprocess.Process, str, Path]:
    """Starts `python -m ...arguments`, waits for the line starting with `ready_prefix` in
    its output (written to a log file: nothing can block on a full pipe)."""
    log_file = directory / f"{name}.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *arguments,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})},
        )
    give_up = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < give_up:
        for line in log_file.read_text(errors="replace").splitlines():
            if line.startswith(ready_prefix):
                return process, line, log_file
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    if process.returncode is None:
        process.kill()
        await process.wait()
    tail = log_file.read_text(errors="replace")[-2000:]
    raise BenchSetupError(f"{name} did not start (see {log_file}):\n{tail}")


def _address_after(line: str, marker: str) -> str:
    return line.split(marker, 1)[1].split(maxsplit=1)[0].rstrip(")")


async def start_echo(directory: Path, upstream: str | None = None, fan_out: int = 0) -> Server:
    """The bare echo service; with `upstream` and `fan_out`, the fan-out floor (see `echo`)."""
    name, arguments = "echo", ["-m", "essc_gateway.loadtest.echo", "--port", "0"]
    if upstream is not None:
        name = f"echo-fan-out-{fan_out}"
        arguments += ["--upstream", upstream, "--fan-out", str(fan_out)]
    process, line, log = await _spawn(name, arguments, directory, "echo listening")
    return Server(name, process, _address_after(line, "listening on "), log)


async def start_platform(directory: Path, seed: int, size: int, name: str = "platform") -> Server:
    process, line, log = await _spawn(
        name,
        [
            "-m",
            "essc_gateway.cli",
            "--log-level",
            "WARNING",
            "platform",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--size",
            str(size),
        ],
        directory,
        "platform listening",
    )
    return Server(
        name,
        process,
        _address_after(line, "listening on "),
        log,
        control_address=_address_after(line, "(control on "),
    )


async def start_gateway(
    directory: Path,
    gateway_secrets: GatewaySecrets,
    platform_address: str,
    workers: int,
    name: str = "gateway",
    database: str | None = None,
    metrics_port: int | None = None,
) -> Server:
    """The gateway in its own process(es), as deployed: a fresh SQLite store in `directory`
    (or `database`, a PostgreSQL DSN), the access log at INFO, traces (tail-sampled) to a
    JSON-lines file; Prometheus metrics on `metrics_port` when given."""
    port = free_port()
    var_dir = directory / name
    var_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        **gateway_secrets.environment,
        "ESSC_PLATFORM_ADDRESS": platform_address,
        "ESSC_DATABASE": database or str(var_dir / "essc-gateway.db"),
        "ESSC_TRACES_FILE": str(var_dir / "traces.jsonl"),
    }
    if metrics_port is not None:
        environment["ESSC_METRICS_PORT"] = str(metrics_port)
    process, _, log = await _spawn(
        name,
        [
            "-m",
            "essc_gateway.cli",
            "run",
            "--port",
            str(port),
            "--var-dir",
            str(var_dir),
            "--workers",
            str(workers),
        ],
        directory,
        "essc-gateway listening",
        environment,
    )
    return Server(name, process, f"127.0.0.1:{port}", log)
