"""The result of a load run and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from essc_gateway.loadtest.applicants import ApplicantCounts
from essc_gateway.loadtest.config import LoadOptions
from essc_gateway.loadtest.stats import (
    Samples,
    Summary,
    TimeSlice,
    summarize,
    summarize_by_rpc,
    timeline,
)


class MergedRun(Protocol):
    """What the runner merged from its workers."""

    samples: Samples
    duration: float
    holders: int
    setup_failures: dict[str, int]
    applicants: ApplicantCounts


@dataclass(frozen=True)
class LoadResult:
    """Summaries of the measured phase, overall and per RPC, with the raw samples."""

    options: LoadOptions
    started_at: datetime
    duration: float
    """Seconds from the start of the measured phase to the last answer."""
    overall: Summary
    by_rpc: dict[str, Summary]
    timeline: list[TimeSlice]
    samples: Samples
    holders: int
    """Holders prepared in the set-up phase."""
    setup_failures: dict[str, int]
    """Holders that could not be prepared, by status code."""
    applicants: ApplicantCounts
    """What Issue did with its applicants (people issued again, verified late, ran out)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON report (latencies in milliseconds)."""
        o = self.options
        return {
            "options": {
                "target": o.target,
                "mode": o.mode,
                "rate": o.rate if o.mode == "open" else None,
                "concurrency": o.concurrency if o.mode == "closed" else None,
                "duration_s": o.effective_duration,
                "count": o.count,
                "workers": o.workers,
                "holders": o.holders,
                "mix": dict(o.mix),
                "seed": o.seed,
                "scenario": str(o.scenario) if o.scenario else None,
            },
            "started_at": self.started_at.isoformat(),
            "setup": {"holders": self.holders, "failures": dict(self.setup_failures)},
            "applicants": self.applicants.to_json(),
            "overall": self.overall.to_json(),
            "rpcs": {rpc: summary.to_json() for rpc, summary in self.by_rpc.items()},
            "timeline": [
                {
                    "t_s": s.start,
                    "count": s.count,
                    "errors": s.errors,
                    "p50_ms": round(s.p50 * 1000, 4),
                    "p99_ms": round(s.p99 * 1000, 4),
                    "max_ms": round(s.maximum * 1000, 4),
                }
                for s in self.timeline
            ],
        }


def build_result(options: LoadOptions, started_at: datetime, merged: MergedRun) -> LoadResult:
    """Summarizes merged samples."""
    samples = merged.samples
    return LoadResult(
        options=options,
        started_at=started_at,
        duration=merged.duration,
        overall=summarize(samples.latencies, samples.codes, merged.duration),
        by_rpc=summarize_by_rpc(samples, merged.duration),
        timeline=timeline(samples),
        samples=samples,
        holders=merged.holders,
        setup_failures=dict(merged.setup_failures),
        applicants=merged.applicants,
    )
