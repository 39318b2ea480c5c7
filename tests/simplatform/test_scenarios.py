"""Scenario files: one format for files, the control RPC and the Python API."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.simplatform import (
    AnswerLost,
    ConnectionFailure,
    ConnectionMode,
    ErrorRate,
    Errors,
    FaultError,
    Hang,
    Latency,
    LatencyDistribution,
    Maintenance,
    Outage,
    Population,
    Rule,
    Scenario,
    SimulatedPlatform,
    load_scenario,
    run_platform,
    scenario_from_proto,
    scenario_to_json,
    scenario_to_proto,
)
from essc_gateway.testing import FakeClock
from tests.polling import eventually
from tests.simplatform.helpers import ISSUE_CARD

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "scenarios"
SECOND = timedelta(seconds=1)

EVERY_KIND = Scenario(
    seed=77,
    rules=(
        Rule(Latency(base=SECOND, distribution=LatencyDistribution.FIXED)),
        Rule(Latency(base=SECOND, jitter=SECOND / 2), method=ISSUE_CARD),
        Rule(Latency(base=SECOND, stddev=SECOND / 4, distribution=LatencyDistribution.NORMAL)),
        Rule(Latency(base=SECOND, sigma=0.5, distribution=LatencyDistribution.LOGNORMAL)),
        Rule(Errors((ErrorRate("UNAVAILABLE", 0.3), ErrorRate("INTERNAL", 0.05)))),
        Rule(Outage(), start_after=10 * SECOND, duration=30 * SECOND),
        Rule(Hang(rate=0.25), method="/essc.platform.v1.CardService/*"),
        Rule(AnswerLost(), method=ISSUE_CARD),
        Rule(Maintenance(), duration=60 * SECOND),
        Rule(ConnectionFailure(ConnectionMode.REFUSE), start_after=SECOND),
        Rule(ConnectionFailure(ConnectionMode.RESET), duration=SECOND),
    ),
)


def test_a_scenario_round_trips_through_its_json_file(tmp_path: Path) -> None:
    message = scenario_to_proto(EVERY_KIND)
    path = tmp_path / "every-kind.json"
    path.write_text(scenario_to_json(message), encoding="utf-8")
    loaded = load_scenario(path)
    assert loaded == message
    assert scenario_from_proto(loaded) == EVERY_KIND


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
async def test_each_example_parses_and_applies(population: Population, path: Path) -> None:
    message = load_scenario(path)
    assert message.rules
    async with SimulatedPlatform(population, clock=FakeClock()) as platform:
        await platform.apply_scenario(path)
        assert platform.faults.scenario == scenario_from_proto(message)
        async with grpc.aio.insecure_channel(platform.control_address) as channel:
            control = pb_grpc.ControlServiceStub(channel)
            status = await control.GetFaultStatus(pb.GetFaultStatusRequest())
            assert status.scenario == message


def test_there_are_the_documented_examples() -> None:
    names = {p.name for p in EXAMPLES.glob("*.json")}
    assert {"outage.json", "flaky.json", "maintenance.json"} <= names
    outage = scenario_from_proto(load_scenario(EXAMPLES / "outage.json"))
    assert outage.rules == (Rule(Outage(), start_after=10 * SECOND, duration=30 * SECOND),)


async def test_apply_scenario_takes_a_message_a_dict_a_path_or_a_scenario(
    population: Population, tmp_path: Path
) -> None:
    as_dict = {"seed": 5, "rules": [{"method": ISSUE_CARD, "hang": {"rate": 0.5}}]}
    expected = Scenario(rules=(Rule(Hang(rate=0.5), method=ISSUE_CARD),), seed=5)
    path = tmp_path / "hang.json"
    path.write_text(scenario_to_json(scenario_to_proto(expected)), encoding="utf-8")
    async with SimulatedPlatform(population, clock=FakeClock()) as platform:
        for source in (as_dict, scenario_to_proto(expected), path, expected):
            await platform.clear_faults()
            await platform.apply_scenario(source)
            assert platform.faults.scenario == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "cannot read"),
        ("{not json", "scenario file"),
        ('{"rules": [{"outage": {}, "colour": "red"}]}', "colour"),
        ('{"rules": [{"method": "*"}]}', "rule 0: a rule needs a fault"),
        ('{"rules": [{"hang": {"rate": 2}}]}', "rule 0: a rate must be between 0 and 1"),
    ],
)
def test_a_bad_scenario_file_is_refused_with_the_reason(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    path = tmp_path / "bad.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(FaultError, match=re.escape(problem)):
        load_scenario(path)


async def test_a_bad_dict_is_refused(population: Population) -> None:
    async with SimulatedPlatform(population, clock=FakeClock()) as platform:
        with pytest.raises(FaultError, match="rule 0"):
            await platform.apply_scenario({"rules": [{"error": {"rates": []}}]})
        assert platform.faults.scenario is None


async def test_run_platform_applies_a_scenario_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = EXAMPLES / "maintenance.json"
    task = asyncio.create_task(run_platform("127.0.0.1", 0, seed=5, size=20, scenario=path))
    output: list[str] = []

    async def listening() -> bool:
        output.append(capsys.readouterr().out)
        return "platform listening on" in "".join(output) or task.done()

    await eventually(listening)
    match = re.search(r"\(control on 127\.0\.0\.1:([0-9]+)\)", "".join(output))
    assert match is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{match[1]}") as channel:
        status = await pb_grpc.ControlServiceStub(channel).GetFaultStatus(
            pb.GetFaultStatusRequest()
        )
        assert status.scenario == load_scenario(path)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
