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
            "4",
            "--rate",
            "20",
            "--sample-every",
            "0.4",
            "--warm-up",
            "0.5",
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
    assert report["load_seconds"] >= 3.8
    assert report["applicants"]["exhausted"] is False
    verdict = report["verdict"]
    assert verdict["ran_its_time"] is True
    assert verdict["long_enough"] is True  # two windows of samples after the warm-up
    assert verdict["unread_samples"] == 0
    steady = verdict["rss_steady"] and verdict["fds_steady"] and verdict["tasks_steady"]
    assert verdict["steady"] is steady
    assert status == (0 if steady else 1)


def _sample(at: float, rss_mb: int, fds: int, tasks: int) -> Sample:
    return Sample(at, ProcessUsage(0.0, rss_mb * 2**20, fds), tasks)


def test_growth_is_judged_on_medians_after_the_warm_up() -> None:
    warming = [_sample(0, 50, 30, 20), _sample(30, 90, 40, 30)]
    after = [_sample(60, 100, 40, 30), _sample(70, 99, 41, 31), _sample(80, 101, 39, 29)]
    steady = judge([*warming, *after, *_steady_tail(108, 44, 35)])
    assert steady["after_warm_up"] == {"rss_mb": 100.0, "open_fds": 40, "tasks": 30}
    assert (steady["rss_steady"], steady["fds_steady"], steady["tasks_steady"]) == (
        True,
        True,
        True,
    )
    assert steady["steady"] is True
    growing = judge([*warming, *after, *_steady_tail(115, 60, 90)])
    assert growing["rss_growth"] == 0.15
    assert (growing["rss_steady"], growing["fds_steady"], growing["tasks_steady"]) == (
        False,
        False,
        False,
    )
    assert growing["steady"] is False


def _steady_tail(rss_mb: int, fds: int, tasks: int) -> list[Sample]:
    return [_sample(500 + 10 * i, rss_mb, fds, tasks) for i in range(3)]


def test_one_sample_amid_a_burst_of_calls_decides_nothing() -> None:
    after = [_sample(60 + 10 * i, 100, 40, 30) for i in range(3)]
    # The last sample caught 40 calls in flight; the two before it did not.
    burst = [_sample(500, 100, 40, 30), _sample(510, 100, 40, 30), _sample(520, 100, 80, 70)]
    verdict = judge([*after, *burst])
    assert verdict["at_end"] == {"rss_mb": 100.0, "open_fds": 40, "tasks": 30}
    assert verdict["steady"] is True


def test_an_unread_sample_is_not_steady() -> None:
    after = [_sample(60 + 10 * i, 100, 40, 30) for i in range(3)]
    unanswered = [_sample(500, 100, 40, 30), _sample(510, 100, 40, -1), _sample(520, 100, 40, 30)]
    verdict = judge([*after, *unanswered])
    assert verdict["unread_samples"] == 1
    assert verdict["at_end"]["tasks"] == 30  # the median of the samples that were read
    assert verdict["steady"] is False
    gone = judge(
        [*after, _sample(490, 100, 40, 30), _sample(500, 100, 40, 30), _sample(510, 0, 0, -1)]
    )
    assert gone["long_enough"] is True  # not steady for the gateway gone, not for the length
    assert gone["unread_samples"] == 1
    assert gone["steady"] is False


def test_a_soak_too_short_for_two_windows_after_the_warm_up_is_not_steady() -> None:
    cold = [_sample(0, 50, 30, 20), _sample(30, 90, 40, 30)]
    assert judge(cold)["steady"] is False  # nothing after the warm-up
    few = [*cold, *(_sample(60 + 10 * i, 100, 40, 30) for i in range(5))]
    verdict = judge(few)
    assert verdict["long_enough"] is False
    assert verdict["steady"] is False
    enough = judge([*few, _sample(110, 100, 40, 30)])
    assert (enough["long_enough"], enough["steady"]) == (True, True)


def test_a_load_that_ended_early_is_not_judged_steady() -> None:
    samples = [_sample(60 + 10 * i, 100, 40, 30) for i in range(6)]
    assert judge(samples)["steady"] is True
    ended_early = judge(samples, ran_its_time=False)
    assert (ended_early["ran_its_time"], ended_early["steady"]) == (False, False)
