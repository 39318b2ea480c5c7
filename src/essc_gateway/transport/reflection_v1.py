"""Server reflection under `grpc.reflection.v1` as well as `v1alpha`: current grpcurl, Postman
and the grpc-java/go tools ask v1 first, and grpcio-reflection ships only v1alpha. The two
protocols' messages are the same on the wire (same fields and numbers), so the v1alpha
servicer answers v1 calls with its own messages, registered under the v1 method path."""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as wire

V1_SERVICE = "grpc.reflection.v1.ServerReflection"


def enable_reflection(service_names: tuple[str, ...], server: grpc.aio.Server) -> None:
    """Reflection of `service_names` (and of both reflection services) on `server`."""
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.aio.ReflectionServicer(names)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1_SERVICE,
                {
                    "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                        servicer.ServerReflectionInfo,
                        request_deserializer=wire.ServerReflectionRequest.FromString,
                        response_serializer=wire.ServerReflectionResponse.SerializeToString,
                    )
                },
            ),
        )
    )
