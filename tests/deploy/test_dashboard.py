"""The Grafana dashboard: loadable JSON, unique panel ids on a grid that does not overlap, and
every query reads only series the gateway exports (the names the scrape test sees, the
cumulative counters' and histograms' suffixes aside), so no panel is silently empty."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "essc-gateway.json"
EXPORTED = {
    "rpc_server_call_duration_seconds",
    "rpc_server_active_calls",
    "rpc_client_call_duration_seconds",
    "essc_platform_breaker_state",
    "essc_outages_open",
    "essc_maintenance_windows_active",
    "essc_forward_queue_depth",
    "essc_ledger_append_duration_seconds",
    "essc_ledger_append_batch_size",
    "essc_ledger_append_failures",
    "essc_store_pool_connections",
    "essc_tls_certificate_expiry_seconds",
    "essc_runtime_tasks",
}
SUFFIXES = re.compile(r"_(bucket|count|sum|total)$")


def series(expr: str) -> set[str]:
    """The series a PromQL expression reads (label names in `by (...)` and matchers aside)."""
    bare = re.sub(r"\{[^}]*\}", "", re.sub(r"by \([^)]*\)", "", expr))
    return {SUFFIXES.sub("", n) for n in re.findall(r"\b((?:essc|rpc)_[a-z_]+)\b", bare)}


def test_every_panel_queries_exported_series_on_a_tidy_grid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area
        for target in panel["targets"]:
            assert series(target["expr"]), target["expr"]
            assert series(target["expr"]) <= EXPORTED, target["expr"]
    shown = set().union(*(series(t["expr"]) for p in panels for t in p["targets"]))
    assert shown == EXPORTED  # every exported series has a panel
