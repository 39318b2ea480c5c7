"""`essc-gateway fuzz`: random and mutated request bodies for every GatewayService method,
sent over real gRPC to a gateway in a process of its own (with the simulated platform), or
to `--target`. Prints the codes histogram; exits 1 on any finding or if the server died."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import grpc

from essc_gateway.bench.processes import (
    BenchSetupError,
    gateway_secrets,
    start_gateway,
    start_platform,
)
from essc_gateway.fuzzing import FuzzReport, fuzz

_POPULATION = 400


def add_fuzz_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=100_000, help="inputs to send")
    parser.add_argument("--seed", type=int, default=1, help="seed of the inputs")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    parser.add_argument("--target", help="host:port of a running gateway (default: start one)")
    parser.add_argument("--token", help="a bank's token for --target")


async def run_fuzz_command(ns: argparse.Namespace) -> int:
    if ns.target:
        if not ns.token:
            print("fuzz: --target needs --token", file=sys.stderr)
            return 2
        report = await _fuzz(ns, ns.target, ns.token)
        return _verdict(report, server_alive=True)
    with tempfile.TemporaryDirectory(prefix="essc-fuzz-") as scratch:
        directory = Path(scratch)
        secrets = gateway_secrets(directory)
        try:
            platform = await start_platform(directory, 20240320, _POPULATION)
        except BenchSetupError as error:
            print(f"fuzz: {error}", file=sys.stderr)
            return 1
        try:
            gateway = await start_gateway(directory, secrets, platform.address, 1)
            try:
                report = await _fuzz(ns, gateway.address, secrets.bank_token)
                alive = gateway.process.returncode is None
            finally:
                await gateway.stop()
        except BenchSetupError as error:
            print(f"fuzz: {error}", file=sys.stderr)
            return 1
        finally:
            await platform.stop()
    return _verdict(report, server_alive=alive)


async def _fuzz(ns: argparse.Namespace, target: str, token: str) -> FuzzReport:
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        report = await fuzz(
            channel,
            (("authorization", f"Bearer {token}"),),
            ns.count,
            ns.seed,
            concurrency=ns.concurrency,
        )
    seconds = time.monotonic() - started
    print(f"fuzz: {report.inputs} inputs (seed {ns.seed}) in {seconds:.0f} s; codes:")
    print(report.histogram())
    return report


def _verdict(report: FuzzReport, *, server_alive: bool) -> int:
    for finding in report.findings[:20]:
        print(f"finding: {finding}", file=sys.stderr)
    if not server_alive:
        print("fuzz: the gateway exited during the run", file=sys.stderr)
    return 0 if server_alive and not report.findings else 1
