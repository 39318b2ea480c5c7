"""Recorded samples and their summaries: exact percentiles from sorted latencies, a
log-spaced histogram, status-code counts, per RPC and overall, and latency over time."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
BUCKETS_PER_DECADE = 5
OK = "OK"


@dataclass
class Samples:
    """Column-wise samples of one worker (compact to pickle between processes).

    `starts` are seconds from the start of the measured phase at which each request was due
    (open loop) or sent (closed loop); `latencies` are seconds from then to the answer.
    """

    rpcs: list[str] = field(default_factory=list)
    starts: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    codes: list[str] = field(default_factory=list)

    def add(self, rpc: str, start: float, latency: float, code: str) -> None:
        """Records one answered (or failed) request."""
        self.rpcs.append(rpc)
        self.starts.append(start)
        self.latencies.append(latency)
        self.codes.append(code)

    def extend(self, other: Samples) -> None:
        """Appends another worker's samples."""
        self.rpcs += other.rpcs
        self.starts += other.starts
        self.latencies += other.latencies
        self.codes += other.codes

    def __len__(self) -> int:
        return len(self.rpcs)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ascending values (exact: a recorded value)."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


@dataclass(frozen=True)
class Bucket:
    """Latencies in [low, high) seconds."""

    low: float
    high: float
    count: int


def histogram(sorted_values: Sequence[float]) -> list[Bucket]:
    """Log-spaced buckets (`BUCKETS_PER_DECADE` per decade) spanning min..max."""
    positive = [v for v in sorted_values if v > 0]
    if not positive:
        return []

    def index(value: float) -> int:
        return math.floor(math.log10(value) * BUCKETS_PER_DECADE + 1e-9)

    first, last = index(positive[0]), index(positive[-1])
    counts = Counter(index(v) for v in positive)
    counts[first] += len(sorted_values) - len(positive)  # zero latencies: the lowest bucket
    return [
        Bucket(
            10 ** (i / BUCKETS_PER_DECADE), 10 ** ((i + 1) / BUCKETS_PER_DECADE), counts.get(i, 0)
        )
        for i in range(first, last + 1)
    ]


@dataclass(frozen=True)
class Summary:
    """ghz-like summary of a set of requests; latencies in seconds."""

    count: int
    ok: int
    errors: int
    duration: float
    rps: float
    minimum: float
    mean: float
    maximum: float
    percentiles: dict[float, float]
    histogram: list[Bucket]
    status_codes: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, latencies in milliseconds."""
        return {
            "count": self.count,
            "ok": self.ok,
            "errors": self.errors,
            "duration_s": self.duration,
            "rps": self.rps,
            "latency_ms": {
                "min": _ms(self.minimum),
                "mean": _ms(self.mean),
                **{percentile_name(p): _ms(v) for p, v in self.percentiles.items()},
                "max": _ms(self.maximum),
            },
            "histogram": [
                {"low_ms": _ms(b.low), "high_ms": _ms(b.high), "count": b.count}
                for b in self.histogram
            ],
            "status_codes": dict(sorted(self.status_codes.items())),
        }


def percentile_name(p: float) -> str:
    """`99.9` -> `p99.9`, `50.0` -> `p50`."""
    return f"p{p:g}"


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 4)


def summarize(latencies: Iterable[float], codes: Iterable[str], duration: float) -> Summary:
    """The summary of requests with these latencies and status codes over `duration` s.

    Latency statistics cover every answer, failures included (as ghz does).
    """
    values = sorted(latencies)
    status = Counter(codes)
    count = len(values)
    ok = status.get(OK, 0)
    return Summary(
        count=count,
        ok=ok,
        errors=count - ok,
        duration=duration,
        rps=count / duration if duration > 0 else 0.0,
        minimum=values[0] if values else 0.0,
        mean=math.fsum(values) / count if count else 0.0,
        maximum=values[-1] if values else 0.0,
        percentiles={p: percentile(values, p) for p in PERCENTILES},
        histogram=histogram(values),
        status_codes=dict(status),
    )


def summarize_by_rpc(samples: Samples, duration: float) -> dict[str, Summary]:
    """One summary per RPC present in `samples`."""
    latencies: dict[str, list[float]] = {}
    codes: dict[str, list[str]] = {}
    for rpc, latency, code in zip(samples.rpcs, samples.latencies, samples.codes, strict=True):
        latencies.setdefault(rpc, []).append(latency)
        codes.setdefault(rpc, []).append(code)
    return {rpc: summarize(latencies[rpc], codes[rpc], duration) for rpc in sorted(latencies)}


@dataclass(frozen=True)
class TimeSlice:
    """Requests due in [start, start + width) seconds of the measured phase."""

    start: float
    count: int
    errors: int
    p50: float
    p99: float
    maximum: float


def timeline(samples: Samples, width: float = 1.0) -> list[TimeSlice]:
    """Latency over time, by the time each request was due/sent, in `width`-second slices."""
    slices: dict[int, list[tuple[float, str]]] = {}
    for start, latency, code in zip(samples.starts, samples.latencies, samples.codes, strict=True):
        slices.setdefault(max(0, math.floor(start / width)), []).append((latency, code))
    result = []
    for i in range(max(slices) + 1 if slices else 0):
        entries = slices.get(i, [])
        values = sorted(latency for latency, _ in entries)
        result.append(
            TimeSlice(
                start=i * width,
                count=len(values),
                errors=sum(1 for _, code in entries if code != OK),
                p50=percentile(values, 50.0),
                p99=percentile(values, 99.0),
                maximum=values[-1] if values else 0.0,
            )
        )
    return result
