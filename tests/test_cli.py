"""`essc-gateway run --dev`: the README's run command, as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc

LISTENING = re.compile(r"essc-gateway listening on 127\.0\.0\.1:(\d+)")
TOKEN = re.compile(r"development bank demo-bank: authorization: Bearer (\S+)")


async def _read_until(stream: asyncio.StreamReader, pattern: re.Pattern[str]) -> re.Match[str]:
    while True:
        line = (await asyncio.wait_for(stream.readline(), timeout=30)).decode()
        if not line:
            raise AssertionError("process ended before printing the expected line")
        if match := pattern.search(line):
            return match


async def test_run_dev_serves_until_sigterm_and_keeps_secrets_private(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "essc_gateway.cli",
        "--log-level",
        "WARNING",
        "run",
        "--dev",
        "--port",
        "0",
        "--var-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    try:
        port = int((await _read_until(process.stdout, LISTENING)).group(1))
        token = (await _read_until(process.stdout, TOKEN)).group(1)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest()
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            # Nobody holds a card yet: the bank is identified, the holder is not found.
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.RequestSmsCode(
                    pb.RequestSmsCodeRequest(
                        social_security_number="11010519491231002X",
                        scenario=pb.BUSINESS_SCENARIO_PAYMENT,
                    ),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=10,
                )
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o077 == 0
    assert (tmp_path / "essc-gateway.db").exists()


async def test_ledger_commands_read_the_store_the_run_left(tmp_path: Path) -> None:
    await test_run_dev_serves_until_sigterm_and_keeps_secrets_private(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}

    async def ledger(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "essc_gateway.cli",
            "ledger",
            "--dev",
            "--var-dir",
            str(tmp_path),
            *args,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        return process.returncode or 0, out.decode()

    code, out = await ledger("verify")
    assert code == 0
    assert "records: 1" in out
    assert "ledger intact" in out
    code, out = await ledger("report", "--bank", "demo-bank", "--format", "json")
    assert code == 0
    assert json.loads(out)["totals"]["BANK"] == 1
