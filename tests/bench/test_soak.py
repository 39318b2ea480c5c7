"""`essc-gateway soak` on a short load: it samples the gateway's memory, open files and asyncio
tasks while a mixed load runs, and judges growth. Not a soak: nothing is timed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from essc_gateway.bench.measured import ProcessUsage
from essc_gateway.bench.soak import MIX, Sample, judge
from essc_gateway.cli import main


@pytest.mark.timeout(180)
def test_soak_samples_the_gateway_under_a_mixed_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "soak.json"
    status = main(
        [
            "--log-level",
            "WARNING",
            "soak",
            "--output",
            str(output),
            "--duration",
            "3",
            "--rate",
            "20",
            "--sample-every",
            "1",
            "--work-dir",
            str(tmp_path / "work"),
        ]
    )
    report = json.loads(output.read_text())
    assert report["requests"] > 0
    # Every RPC of the mix ran and was answered; refusals would show as other codes.
    assert report["status_codes"] == {"OK": report["requests"]}, capsys.readouterr().err
    assert set(report["mix"]) == set(MIX)
    assert len(report["samples"]) >= 3
    for sample in report["samples"]:
        assert sample["rss_mb"] > 0
        assert sample["open_fds"] > 0
        assert sample["tasks"] > 0  # read from the gateway's own gauge
    # It ran its whole time: the workers' population is the one the platform was made with.
    assert report["load_seconds"] >= 2.8
    assert report["applicants"]["exhausted"] is False
    verdict = report["verdict"]
    assert verdict["ran_its_time"] is True
    steady = verdict["rss_steady"] and verdict["fds_steady"] and verdict["tasks_steady"]
    assert status == (0 if steady else 1)


def _sample(at: float, rss_mb: int, fds: int, tasks: int) -> Sample:
    return Sample(at, ProcessUsage(0.0, rss_mb * 2**20, fds), tasks)


def test_growth_is_judged_against_the_first_sample_after_the_warm_up() -> None:
    warming = [_sample(0, 50, 30, 20), _sample(30, 90, 40, 30), _sample(60, 100, 40, 30)]
    steady = judge([*warming, _sample(600, 108, 44, 35)])
    assert (steady["rss_steady"], steady["fds_steady"], steady["tasks_steady"]) == (
        True,
        True,
        True,
    )
    growing = judge([*warming, _sample(600, 115, 60, 90)])
    assert growing["rss_growth"] == 0.15
    assert (growing["rss_steady"], growing["fds_steady"], growing["tasks_steady"]) == (
        False,
        False,
        False,
    )


def test_a_load_that_ended_early_is_not_judged_steady() -> None:
    samples = [_sample(0, 50, 30, 20), _sample(60, 100, 40, 30), _sample(70, 100, 40, 30)]
    assert judge(samples, ran_its_time=False)["ran_its_time"] is False
