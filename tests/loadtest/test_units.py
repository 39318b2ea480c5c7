"""Percentiles, histogram, mix parsing, option validation and the command line."""

from __future__ import annotations

import argparse

import pytest

from essc_gateway.loadtest import LoadOptions, add_load_arguments, options_from_args, parse_mix
from essc_gateway.loadtest.config import worker_plans
from essc_gateway.loadtest.stats import histogram, percentile, summarize


def test_nearest_rank_percentiles_are_recorded_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 99.9) == 100.0
    assert percentile([], 50) == 0.0


def test_histogram_counts_every_value_in_log_buckets() -> None:
    values = sorted([0.0005, 0.001, 0.002, 0.02, 0.3])
    buckets = histogram(values)
    assert sum(b.count for b in buckets) == len(values)
    assert all(b.high / b.low == pytest.approx(10 ** (1 / 5)) for b in buckets)


def test_summary_counts_codes() -> None:
    summary = summarize([0.01, 0.02, 0.03], ["OK", "UNAVAILABLE", "OK"], duration=1.5)
    assert (summary.count, summary.ok, summary.errors) == (3, 2, 1)
    assert summary.rps == pytest.approx(2.0)


def test_parse_mix() -> None:
    assert parse_mix("verify=4, query=1") == {"verify": 4.0, "query": 1.0}
    with pytest.raises(ValueError, match="bad mix entry"):
        parse_mix("terminate=1")


@pytest.mark.parametrize(
    "overrides",
    [
        {"mix": {"verify": 0}},
        {"mode": "closed", "concurrency": 1, "workers": 2},
        {"scenario": "x.json"},
        {"holders": 1, "workers": 2},
    ],
)
def test_invalid_options_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        LoadOptions("127.0.0.1:1", **overrides)  # type: ignore[arg-type]


def test_work_is_split_over_workers() -> None:
    plans = worker_plans(LoadOptions("127.0.0.1:1", workers=3, count=10, concurrency=8))
    assert [p.count for p in plans] == [4, 3, 3]
    assert [p.concurrency for p in plans] == [3, 3, 2]


def test_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_load_arguments(parser)
    options = options_from_args(
        parser.parse_args(["--rate", "300", "--duration", "5", "--mix", "query=1", "--quiet"])
    )
    assert (options.mode, options.rate, options.duration) == ("open", 300.0, 5.0)
    assert dict(options.mix) == {"query": 1.0}
    assert not options.progress
    closed = options_from_args(parser.parse_args(["--concurrency", "16", "--count", "100"]))
    assert (closed.mode, closed.concurrency, closed.count) == ("closed", 16, 100)
