"""Fuzzing the gateway's public API over real gRPC: random bytes and mutated valid messages
for every GatewayService method.

A finding is an answer that no input may cause: INTERNAL or UNKNOWN, a dropped connection
(UNAVAILABLE without the gateway's ErrorInfo) or a call that was never answered. Whether the
server is still alive afterwards is the caller's check. Inputs come from a seeded
`random.Random`, so a run is reproducible from its seed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2

from essc.gateway.v1 import gateway_pb2

GATEWAY_METHODS: tuple[MethodDescriptor, ...] = tuple(
    gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods
)
FORBIDDEN = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
NOT_ANSWERED = "NOT_ANSWERED"
CALL_TIMEOUT = 10.0

# Values a bank could plausibly send, so that mutations start near the accepted inputs.
_STRINGS = (
    "11010519491231002X",
    "440524188001010014",
    "13800138000",
    "+8613800138000",
    "王伟",
    "阿依古丽·买买提",
    "K12345678",
    "2024-03-20",
    "Tr1cky-Harbour!",
    "123456",
    "0123456789abcdef0123456789abcdef",
    "",
)
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x08)


@dataclass(frozen=True)
class Finding:
    """A forbidden answer, with what reproduces it."""

    method: str
    code: str
    details: str
    body_hex: str


@dataclass
class FuzzReport:
    """Answers by status code, per method and overall, and the findings."""

    codes: Counter[str] = field(default_factory=Counter)
    by_method: dict[str, Counter[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def inputs(self) -> int:
        return sum(self.codes.values())

    def add(self, method: str, code: str) -> None:
        self.codes[code] += 1
        self.by_method.setdefault(method, Counter())[code] += 1

    def histogram(self) -> str:
        """One line per status code, most frequent first."""
        width = max((len(code) for code in self.codes), default=0)
        return "\n".join(f"{code:<{width}} {n:>8}" for code, n in self.codes.most_common())


def seed_message(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Message:
    """A message of `descriptor`'s type with every field set to a plausible value."""
    message: Message = GetMessageClass(descriptor)()
    for fd in descriptor.fields:
        count = rng.randint(0, 2) if fd.is_repeated else 1
        for _ in range(count):
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                if depth >= 3 or fd.message_type is None:
                    continue
                value = seed_message(fd.message_type, rng, depth + 1)
                if fd.is_repeated:
                    getattr(message, fd.name).add().CopyFrom(value)
                else:
                    getattr(message, fd.name).CopyFrom(value)
                continue
            _set(message, fd, _scalar(fd, rng))
    return message


def _scalar(fd: FieldDescriptor, rng: random.Random) -> Any:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return rng.choice(_STRINGS)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice((0, 16, 32)))
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type is not None:
        return rng.choice(fd.enum_type.values).number
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.uniform(-1e3, 1e3)
    return rng.choice((0, 1, 2, 1_700_000_000, 2**31 - 1))


def _set(message: Message, fd: FieldDescriptor, value: Any) -> None:
    if fd.is_repeated:
        getattr(message, fd.name).append(value)
    else:
        setattr(message, fd.name, value)


def mutate(body: bytes, rng: random.Random) -> bytes:
    """`body` with one to four byte-level mutations."""
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        position = rng.randint(0, len(data))
        if choice == 0 and data:  # flip a bit
            index = rng.randrange(len(data))
            data[index] ^= 1 << rng.randrange(8)
        elif choice == 1:  # truncate
            del data[position:]
        elif choice == 2:  # insert random bytes
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif choice == 3 and data:  # overwrite with an interesting byte
            data[rng.randrange(len(data))] = rng.choice(_INTERESTING_BYTES)
        elif choice == 4:  # duplicate a slice
            end = rng.randint(position, len(data))
            data[end:end] = data[position:end]
        else:  # delete a slice
            del data[position : rng.randint(position, len(data))]
    return bytes(data)


def inputs(
    rng: random.Random, methods: Sequence[MethodDescriptor] = GATEWAY_METHODS
) -> Iterator[tuple[MethodDescriptor, bytes]]:
    """Endless (method, body): a quarter random bytes, a quarter valid seeds, half mutants."""
    while True:
        for method in methods:
            kind = rng.randrange(4)
            if kind == 0:
                yield method, rng.randbytes(rng.randint(0, 64))
                continue
            body = seed_message(method.input_type, rng).SerializeToString()
            yield method, body if kind == 1 else mutate(body, rng)


def _has_error_info(error: grpc.aio.AioRpcError) -> bool:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return bool(status_pb2.Status.FromString(value).details)
    return False


async def fuzz(
    channel: grpc.aio.Channel,
    metadata: Sequence[tuple[str, str]],
    count: int,
    seed: int,
    *,
    concurrency: int = 8,
    methods: Sequence[MethodDescriptor] = GATEWAY_METHODS,
) -> FuzzReport:
    """Sends `count` inputs from `seed` over `channel`; returns what came back."""
    report = FuzzReport()
    calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {
        m.name: channel.unary_unary(f"/{m.containing_service.full_name}/{m.name}") for m in methods
    }
    source = inputs(random.Random(seed), methods)  # noqa: S311 - reproducible inputs
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            method, body = next(source)
            code, details = await _call(calls[method.name], body, metadata)
            report.add(method.name, code)
            if code in {c.name for c in FORBIDDEN} or code == NOT_ANSWERED or details:
                report.findings.append(Finding(method.name, code, details, body.hex()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return report


async def _call(
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes],
    body: bytes,
    metadata: Sequence[tuple[str, str]],
) -> tuple[str, str]:
    """The answer's code, and a description when it is a dropped connection."""
    try:
        await call(body, metadata=tuple(metadata), timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if _has_error_info(error):  # an answer of the gateway's own
            return code.name, ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return NOT_ANSWERED, "no answer within the call timeout"
        if code == grpc.StatusCode.UNAVAILABLE:
            return code.name, f"connection dropped: {error.details()}"
        return code.name, ""
    return grpc.StatusCode.OK.name, ""
