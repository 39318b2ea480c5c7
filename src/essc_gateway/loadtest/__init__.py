"""Load harness: drives the gateway over real gRPC with a mix of Verify, Issue, Authenticate
and Query from the simulated population, open or closed loop, from spawned worker
processes, and reports like ghz (text, JSON, CSV, HTML).

    options = LoadOptions("127.0.0.1:50051", token=TOKEN, mode="open", rate=500, duration=30)
    result = await run_load(options)

Modules: `config` (options, per-worker plans), `workload` (identities, set-up of holders,
operations), `runner` (processes, timetable, progress), `stats` (percentiles, histogram),
`result`, `report` (text, JSON, CSV), `html_report`, `arguments` (command line).
"""

from __future__ import annotations

from essc_gateway.loadtest.arguments import add_load_arguments, options_from_args
from essc_gateway.loadtest.config import DEFAULT_MIX, RPCS, LoadOptions, parse_mix
from essc_gateway.loadtest.result import LoadResult
from essc_gateway.loadtest.runner import LoadAborted, run_load
from essc_gateway.loadtest.stats import Summary
from essc_gateway.loadtest.workload import SetupError

__all__ = [
    "DEFAULT_MIX",
    "RPCS",
    "LoadAborted",
    "LoadOptions",
    "LoadResult",
    "SetupError",
    "Summary",
    "add_load_arguments",
    "options_from_args",
    "parse_mix",
    "run_load",
]
