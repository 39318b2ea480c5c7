"""Request bodies that are not valid protobuf for their method.

grpcio decodes a body before any interceptor code runs and answers a decoding failure with
UNKNOWN and an ERROR traceback per call. The gateway decodes instead with a deserializer that
never raises: an undecodable body becomes `UNDECODABLE`, which the interceptor answers
INVALID_ARGUMENT / MALFORMED_REQUEST like any other bad input (logged, counted, recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any


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
