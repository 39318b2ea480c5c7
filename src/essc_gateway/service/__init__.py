"""Use cases of the gateway, in domain terms: no protobuf, no gRPC, no SQL."""
