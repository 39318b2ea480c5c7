"""A bare `grpc.aio` unary echo service: the baseline a benchmark compares the gateway with.

No interceptors, no protobuf stubs of our own: one generic handler echoing a
`google.protobuf.BytesValue`, so what it costs is gRPC and protobuf alone.

With `--fan-out N --upstream ADDRESS` it is the floor of a gateway RPC instead: each request
makes N concurrent echo calls upstream before it answers, as a gateway RPC makes N platform
calls, with nothing else. Its CPU per request is what gRPC alone costs for that shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.wrappers_pb2 import BytesValue

ECHO_METHOD = "/essc.bench.v1.EchoService/Echo"
ECHO_PAYLOAD = BytesValue(value=b"x" * 64)


Echo = grpc.aio.UnaryUnaryMultiCallable[BytesValue, BytesValue]


async def _echo(
    request: BytesValue, context: grpc.aio.ServicerContext[BytesValue, BytesValue]
) -> BytesValue:
    return request


def _fan_out(
    upstream: Echo, calls: int
) -> Callable[
    [BytesValue, grpc.aio.ServicerContext[BytesValue, BytesValue]], Awaitable[BytesValue]
]:
    async def fan_out(
        request: BytesValue, context: grpc.aio.ServicerContext[BytesValue, BytesValue]
    ) -> BytesValue:
        await asyncio.gather(*(upstream(request) for _ in range(calls)))
        return request

    return fan_out


def echo_server(upstream: Echo | None = None, fan_out: int = 0) -> grpc.aio.Server:
    """An unstarted server with the echo method (add a port, then start it); with an
    `upstream` echo and `fan_out` > 0, each request first makes that many calls to it."""
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        _fan_out(upstream, fan_out) if upstream is not None and fan_out > 0 else _echo,
        request_deserializer=BytesValue.FromString,
        response_serializer=BytesValue.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("essc.bench.v1.EchoService", {"Echo": handler}),)
    )
    return server


def echo_stub(channel: grpc.aio.Channel) -> Echo:
    """The client side of `ECHO_METHOD` on `channel`."""
    return channel.unary_unary(
        ECHO_METHOD,
        request_serializer=BytesValue.SerializeToString,
        response_deserializer=BytesValue.FromString,
    )


async def serve_echo(host: str, port: int, upstream: str | None = None, fan_out: int = 0) -> None:
    """Serves the echo service until SIGINT or SIGTERM; prints the bound address."""
    # The gateway's platform channel has grpc-core retries off too: the same client path.
    channel = (
        grpc.aio.insecure_channel(upstream, options=[("grpc.enable_retries", 0)])
        if upstream
        else None
    )
    server = echo_server(echo_stub(channel) if channel else None, fan_out)
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
        if channel is not None:
            await channel.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the bare echo service of the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", help="host:port of an echo service to fan out to")
    parser.add_argument("--fan-out", type=int, default=0, help="upstream calls per request")
    arguments = parser.parse_args()
    if (arguments.upstream is None) != (arguments.fan_out < 1):
        parser.error("--upstream and --fan-out go together")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_echo(arguments.host, arguments.port, arguments.upstream, arguments.fan_out)
        )
