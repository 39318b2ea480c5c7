"""Options of a load run: one frozen, validated dataclass, and the per-worker plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

RPCS = ("verify", "issue", "authenticate", "query")
"""The operations a mix may name. `issue` sends Issue alone, with a verification token
obtained in the set-up phase (see `LoadOptions.applicants`)."""

HOLDER_RPCS = frozenset({"authenticate", "query"})
"""Operations that need holders prepared in the set-up phase."""

DEFAULT_MIX: Mapping[str, float] = MappingProxyType(
    {"verify": 4.0, "issue": 1.0, "authenticate": 2.0, "query": 3.0}
)

Mode = Literal["open", "closed"]
Service = Literal["gateway", "platform", "echo"]
SERVICES = ("gateway", "platform", "echo")


def parse_mix(text: str) -> dict[str, float]:
    """`"verify=4,query=3"` -> `{"verify": 4.0, "query": 3.0}`.

    Raises:
        ValueError: an unknown RPC, a missing `=` or a weight that is not a number.
    """
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in RPCS:
            raise ValueError(f"bad mix entry {part!r}: use rpc=weight with rpc in {RPCS}")
        mix[name] = float(weight)
    return mix


@dataclass(frozen=True)
class LoadOptions:
    """What to load, how hard and for how long; where to write the report."""

    target: str
    """`host:port` of the gateway (or of the `service` named)."""

    service: Service = "gateway"
    """What `target` is: the gateway; the simulated platform, called directly with what the
    gateway sends it for each RPC; or the bare echo service (mix ignored). The last two are
    a benchmark's reference points."""

    token: str | None = None
    """The bank's bearer token."""

    ca_file: Path | None = None
    """TLS: CAs trusted for the gateway's certificate."""

    cert_file: Path | None = None
    """mTLS: the bank's client certificate chain."""

    key_file: Path | None = None
    """mTLS: the key of `cert_file`."""

    mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_MIX)
    """Relative weights of the operations (`RPCS`); zero-weight entries are never sent."""

    mode: Mode = "closed"
    """`open`: requests on a fixed timetable at `rate`; `closed`: `concurrency` loops."""

    rate: float = 100.0
    """Open loop: requests per second over all workers."""

    concurrency: int = 8
    """Closed loop: requests in flight over all workers."""

    duration: float | None = None
    """Seconds of the measured phase. With `count` too, whichever ends first."""

    count: int | None = None
    """Requests of the measured phase over all workers. Neither set: 10 seconds."""

    workers: int = 2
    """Worker processes (spawned). 0 runs one worker in the caller's event loop."""

    holders: int = 20
    """Holders prepared in the set-up phase (issued, password changed), over all workers."""

    applicants: int = 200
    """People verified in the set-up phase for `issue`, over all workers. Each Issue of the
    measured phase takes the next fresh person: one of these, then others verified on the
    spot; nobody is issued twice, and a worker whose share of the population is used up
    ends its measured phase (see `applicants.py`)."""

    first_person: int = 0
    """Eligible people skipped before holders and applicants are taken (successive runs
    against one platform use fresh people this way)."""

    people: int | None = None
    """Eligible people this run may use from `first_person` on, holders included (None: all
    the rest), so that a run that issues faster than planned ends early instead of taking
    the people of the next run."""

    seed: int = 20240320
    """Seed of the simulated population (the platform's) and of the workers' choices."""

    population_size: int = 2000
    """Size of the platform's population; workers regenerate it from `seed`."""

    timeout: float = 10.0
    """Deadline in seconds of each call."""

    client_retries: bool = False
    """Let grpcio retry UNAVAILABLE. Off by default: retries would hide the failures."""

    max_in_flight: int = 10_000
    """Open loop: calls in flight per worker before the timetable waits (latency still
    counts from the scheduled time)."""

    consent_age: float = 300.0
    """Seconds before now that the holders accepted the agreement. Raise it against a
    gateway whose clock runs behind (a test's FakeClock): consents may not lie in its future."""

    scenario: Path | None = None
    """Fault scenario (JSON of `essc.platform.v1.FaultScenario`) applied when the measured
    phase starts, through the platform's ControlService."""

    control_address: str | None = None
    """`host:port` of the platform's ControlService; required with `scenario`."""

    clear_faults: bool = True
    """Clear the platform's faults when the run ends (only when a scenario was applied)."""

    json_path: Path | None = None
    """Where to write the JSON report."""

    csv_path: Path | None = None
    """Where to write the CSV summary (a row per RPC and one overall)."""

    html_path: Path | None = None
    """Where to write the HTML page (latency over time, inline SVG)."""

    progress: bool = True
    """A progress line per second on stderr."""

    summary: bool = True
    """Print the text report on stdout at the end."""

    def __post_init__(self) -> None:
        if not self.target:
            raise ValueError("target is required")
        unknown = set(self.mix) - set(RPCS)
        if unknown:
            raise ValueError(f"unknown RPCs in mix: {sorted(unknown)}")
        if any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError("mix weights must be non-negative with a positive sum")
        if (
            self.service != "echo"
            and self.mix.get("issue", 0) > 0
            and (self.applicants < self.process_count)
        ):
            raise ValueError("issue needs at least one applicant per worker")
        self._check_shape()
        if self.rate <= 0 or self.concurrency < 1:
            raise ValueError("rate must be positive and concurrency at least 1")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.workers < 0:
            raise ValueError("workers must not be negative")
        if self.uses_holders and self.holders < self.process_count:
            raise ValueError("authenticate/query need at least one holder per worker")
        if self.first_person < 0 or (self.people is not None and self.people < 0):
            raise ValueError("first_person and people must not be negative")
        if self.timeout <= 0 or self.max_in_flight < 1 or self.consent_age < 0:
            raise ValueError("timeout, max_in_flight and consent_age are out of range")
        if self.scenario is not None and self.control_address is None:
            raise ValueError("a scenario needs the platform's control_address")
        # A plain dict copy, not a MappingProxyType: options are pickled to spawned workers.
        object.__setattr__(self, "mix", {k: float(v) for k, v in self.mix.items()})

    def _check_shape(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"service is one of {SERVICES}")
        if self.mode not in ("open", "closed"):
            raise ValueError("mode is 'open' or 'closed'")
        if self.mode == "closed" and self.concurrency < self.process_count:
            raise ValueError("closed loop needs concurrency >= workers")

    @property
    def process_count(self) -> int:
        """Workers that send load (at least one)."""
        return max(1, self.workers)

    @property
    def uses_holders(self) -> bool:
        """Whether the mix needs prepared holders."""
        return self.service != "echo" and any(self.mix.get(rpc, 0.0) > 0 for rpc in HOLDER_RPCS)

    @property
    def effective_duration(self) -> float | None:
        """The measured phase's time limit: `duration`, or 10 s when no count is set."""
        if self.duration is None and self.count is None:
            return 10.0
        return self.duration


@dataclass(frozen=True)
class WorkerPlan:
    """One worker's share of the run; plain and picklable (sent to a spawned process)."""

    options: LoadOptions
    index: int
    rate: float
    """Open loop: this worker's requests per second."""
    concurrency: int
    """Closed loop: this worker's loops."""
    count: int | None
    """This worker's share of `options.count`."""
    phase: float
    """Open loop: seconds after the start of this worker's first request (interleaving)."""


def split(total: int, parts: int, index: int) -> int:
    """`index`'s share when `total` is split as evenly as possible into `parts`."""
    return total // parts + (1 if index < total % parts else 0)


def worker_plans(options: LoadOptions) -> list[WorkerPlan]:
    """The run split over `options.process_count` workers."""
    n = options.process_count
    return [
        WorkerPlan(
            options=options,
            index=i,
            rate=options.rate / n,
            concurrency=split(options.concurrency, n, i),
            count=None if options.count is None else split(options.count, n, i),
            phase=i / options.rate,
        )
        for i in range(n)
    ]
