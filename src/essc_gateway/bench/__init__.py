"""The benchmark (`essc-gateway bench`, `make bench`): the bare echo service as baseline, the
gateway per RPC against the simulated platform, the maintenance fast failure, the store
alone and two gateway workers on one port; ratios to the baseline, targets, JSON report.

Modules: `processes` (servers in their own processes, CPU counters), `suite` (the
measurements), `store_rate`, `targets`, `report` (table).
"""

from __future__ import annotations

from essc_gateway.bench.processes import BenchSetupError
from essc_gateway.bench.report import format_table
from essc_gateway.bench.suite import BenchOptions, run_bench

__all__ = ["BenchOptions", "BenchSetupError", "format_table", "run_bench"]
