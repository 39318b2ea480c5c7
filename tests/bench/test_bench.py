"""`essc-gateway bench` on a tiny load: it runs every measurement against real servers in
their own processes and writes a well-formed report. Not a benchmark: nothing is timed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from essc_gateway.bench.sizing import IssueSizing
from essc_gateway.cli import main
from essc_gateway.loadtest.applicants import population_size_for

TARGET_NAMES = {
    "CPU per request, verify / echo",
    "CPU per request, issue / echo",
    "CPU per request, query / echo",
    "added p50 at half load, verify",
    "added p50 at half load, issue",
    "added p50 at half load, query",
    "maintenance fast-fail p99",
    "store: issuance records committed durably",
    "CPU per request, 2 workers vs 1, same rate",
    "store on PostgreSQL: issuance records committed durably",
    "CPU per request, 2 replicas behind nginx vs 1, same rate",
    "CPU per request, Issue on PostgreSQL vs SQLite",
    "evidence log: appends with it / without (sqlite)",
    "evidence log: appends with it / without (postgresql)",
    "evidence log: inclusion proof in 5,000 entries, p99",
}


@pytest.mark.timeout(240)
def test_bench_writes_a_well_formed_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bench.json"
    status = main(
        [
            "--log-level",
            "WARNING",
            "bench",
            "--output",
            str(output),
            "--duration",
            "0.4",
            "--concurrency",
            "4",
            "--load-workers",
            "0",
            "--rpcs",
            "verify,issue,query",
            "--population-size",
            "2500",
            "--holders",
            "2",
            "--fast-fail-rate",
            "50",
            "--store-seconds",
            "0.3",
            "--store-writers",
            "8",
            "--repeats",
            "2",
            "--work-dir",
            str(tmp_path / "work"),
            "--evidence-log-size",
            "5000",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert status == 0, capsys.readouterr().err
    report = json.loads(output.read_text())
    echo = report["baseline"]["echo"]
    assert echo["requests"] > 0
    assert echo["errors"] == 0
    assert echo["cpu_us_per_request"] > 0
    # One floor per fan-out shape of the RPCs measured: Issue 1, Verify 3, Query 5 calls.
    floors = report["baseline"]["fan_out_floor"]
    assert set(floors) == {"1", "3", "5"}
    assert all(f["status_codes"] == {"OK": f["requests"]} for f in floors.values())
    for rpc in ("verify", "issue", "query"):
        measured = report["rpcs"][rpc]
        for load in (
            measured["max_load"],
            measured["half_load"]["gateway"],
            measured["half_load"]["platform"],
            measured["half_load"]["floor"],
        ):
            assert load["requests"] > 0
            assert load["status_codes"] == {"OK": load["requests"]}, rpc
            # Two runs each: the median's CPU is one of them, their spread is reported,
            # and the server's memory and open files after each.
            assert load["repeats"] == 2
            assert load["cpu_us_per_request"] in load["cpu_us_per_request_runs"]
            assert load["cpu_spread"] >= 0
            assert len(load["rss_mb_after"]) == 2
            assert all(rss > 0 for rss in load["rss_mb_after"])
            assert all(fds > 0 for fds in load["open_fds_after"])
        assert isinstance(measured["added_p50_ms_over_floor"], float)
        assert measured["cpu_ratio"] > 0
        assert measured["floor_cpu_ratio"] > 0
        assert isinstance(measured["gateway_own_cpu_us_per_request"], float)
        assert measured["throughput_ratio"] > 0
    # Sized from the calibrated rate: no Issue run was for someone issued before (answers
    # ALREADY_HELD, counted from the replies), none ran out of applicants or verified late.
    issue = report["rpcs"]["issue"]
    assert issue["calibrated_rate"] > 0
    for run in ("max_load", "half_load", "platform_half_load"):
        assert issue["applicants"][run] == 2 * [
            {"issued_again": 0, "verified_during_load": 0, "exhausted": False}
        ], run
    # The platform's population: the option, or more if the calibrated rate needs more.
    sizing = IssueSizing(issue["calibrated_rate"], 0.4, 4, 0)
    needed = population_size_for(
        20240320,
        sizing.eligible_people(("verify", "issue", "query"), 2, repeats=2),
        datetime.now(UTC).date(),
    )
    assert report["options"]["population_size_used"] == max(2500, needed)
    # Every Verify inside the window is refused by the gateway itself.
    fast = report["maintenance_fast_fail"]
    assert fast["requests"] > 0
    assert fast["status_codes"] == {"UNAVAILABLE": fast["requests"]}
    for workers in ("one_worker", "two_workers"):
        for load in report["workers"][workers].values():
            assert load["requests"] > 0
            assert load["status_codes"] == {"OK": load["requests"]}
    assert report["store"]["records"] > 0
    # Issue 11: the cluster's measurements ran and every call of theirs succeeded.
    cluster = report["cluster"]
    assert cluster["store_postgresql"]["records"] > 0
    for shape in ("one_replica", "two_replicas"):
        load = cluster["replicas_behind_nginx"][shape]
        assert load["requests"] > 0
        assert load["status_codes"] == {"OK": load["requests"]}, shape
    # Issue 12: the evidence log's costs were measured.
    evidence = report["evidence"]
    for store in ("sqlite", "postgresql"):
        assert evidence[f"append_{store}"]["with_log_per_s"] > 0
        assert evidence[f"append_{store}"]["without_log_per_s"] > 0
    assert evidence["inclusion_proof"]["samples"] == 300
    assert evidence["inclusion_proof"]["log_entries"] == 5000
    issue_pg = cluster["issue_on_postgresql"]["max_load"]
    assert issue_pg["status_codes"] == {"OK": issue_pg["requests"]}
    assert {t["name"] for t in report["targets"]} == TARGET_NAMES
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    table = capsys.readouterr().out
    assert "baseline echo" in table
    assert "targets:" in table
