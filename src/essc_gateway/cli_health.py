"""`essc-gateway health`: the gRPC health check as a command, for images and probes that
have no grpc_health_probe. Exit 0 SERVING, 1 anything else, 2 unreachable."""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def add_health_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default="127.0.0.1:50051",
        help="host:port of the gateway's plaintext port (its health port under TLS)",
    )
    parser.add_argument(
        "--service", default="", help="a service name; empty: the server as a whole"
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")


async def run_health_command(options: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(options.address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=options.service), timeout=options.timeout
            )
        except grpc.aio.AioRpcError as error:
            code = error.code() or grpc.StatusCode.UNKNOWN
            print(f"{options.address}: {code.name}", file=sys.stderr)
            return 2 if code in _UNREACHABLE else 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{options.address} {options.service or '(server)'}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
