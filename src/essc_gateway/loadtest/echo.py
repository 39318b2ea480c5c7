"""A bare `grpc.aio` unary echo service: the baseline a benchmark compares the gateway with.

No interceptors, no protobuf stubs of our own: one generic handler echoing a
`google.protobuf.BytesValue`, so what it costs is gRPC and protobuf alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import grpc
from google.protobuf.wrappers_pb2 import BytesValue

ECHO_METHOD = "/essc.bench.v1.EchoService/Echo"
ECHO_PAYLOAD = BytesValue(value=b"x" * 64)


async def _echo(
    request: BytesValue, context: grpc.aio.ServicerContext[BytesValue, BytesValue]
) -> BytesValue:
    return request


def echo_server() -> grpc.aio.Server:
    """An unstarted server with the echo method (add a port, then start it)."""
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        _echo,
        request_deserializer=BytesValue.FromString,
        response_serializer=BytesValue.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("essc.bench.v1.EchoService", {"Echo": handler}),)
    )
    return server


def echo_stub(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryUnaryMultiCallable[BytesValue, BytesValue]:
    """The client side of `ECHO_METHOD` on `channel`."""
    return channel.unary_unary(
        ECHO_METHOD,
        request_serializer=BytesValue.SerializeToString,
        response_deserializer=BytesValue.FromString,
    )


async def serve_echo(host: str, port: int) -> None:
    """Serves the echo service until SIGINT or SIGTERM; prints the bound address."""
    server = echo_server()
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(f"echo listening on {host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(0.5)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the bare echo service of the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_echo(arguments.host, arguments.port))
