"""gRPC edge of the gateway: protobuf <-> domain, bank identification, error mapping."""
