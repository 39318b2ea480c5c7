"""Request bodies that are not valid protobuf for their method.

grpcio decodes a body before any interceptor code runs and answers a decoding failure with
UNKNOWN and an ERROR traceback per call. The gateway decodes instead with a deserializer that
never raises: an undecodable body becomes `UNDECODABLE`, which the interceptor answers
INVALID_ARGUMENT / MALFORMED_REQUEST like any other bad input (logged, counted, recorded).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum
from typing import Any

import grpc


class _Undecodable(Enum):
    UNDECODABLE = "undecodable"


UNDECODABLE = _Undecodable.UNDECODABLE
"""Stands for a request body that could not be decoded."""

Deserializer = Callable[[bytes], Any]


def tolerant(deserialize: Deserializer | None) -> Deserializer | None:
    """`deserialize`, answering `UNDECODABLE` instead of raising."""
    if deserialize is None:
        return None

    def decode(body: bytes) -> Any:
        try:
            return deserialize(body)
        # Whatever the parser raises (DecodeError; RecursionError on deep nesting) means
        # one thing: this body is not a message of the method's type.
        except Exception:
            return UNDECODABLE

    return decode


Context = grpc.aio.ServicerContext[Any, Any]
Refusal = Callable[[Context], Awaitable[None]]


def guarded(
    handler: grpc.RpcMethodHandler[Any, Any], refuse: Refusal
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of another service (health, reflection) that decodes with `tolerant` and
    answers an undecodable message with `refuse` (which aborts the call), never with
    grpcio's UNKNOWN and a traceback."""
    deserialize = tolerant(handler.request_deserializer)
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        # grpc.aio calls the servicer's coroutine functions; the stubs type them as sync.
        unary: Any = handler.unary_unary

        async def unary_unary(request: Any, context: Context) -> Any:
            if request is UNDECODABLE:
                await refuse(context)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=deserialize, response_serializer=serialize
        )
    if handler.unary_stream is not None:
        streaming: Any = handler.unary_stream

        async def unary_stream(request: Any, context: Context) -> None:
            if request is UNDECODABLE:
                await refuse(context)
            await _respond(streaming(request, context), context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=deserialize, response_serializer=serialize
        )
    if handler.stream_stream is not None:
        bidirectional: Any = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: Context) -> None:
            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if request is UNDECODABLE:
                        await refuse(context)
                    yield request

            await _respond(bidirectional(checked(), context), context)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, request_deserializer=deserialize, response_serializer=serialize
        )
    return handler  # client streaming: none of ours


async def _respond(result: Any, context: Context) -> None:
    """Sends what a streaming servicer method produces, written or yielded."""
    if inspect.isasyncgen(result):
        async for response in result:
            await context.write(response)
    elif inspect.isawaitable(result):
        await result
