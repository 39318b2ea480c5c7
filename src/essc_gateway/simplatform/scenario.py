"""Fault scenarios: protobuf `FaultScenario` <-> `faults.Scenario`, and scenario files.

One format everywhere: a scenario file is the protobuf JSON form of `FaultScenario`, the
same message `ControlService.SetFaultScenario` takes and `SimulatedPlatform.apply_scenario`
accepts (as the message, its JSON dict, or a path to the file). Example::

    {
      "seed": 7,
      "rules": [
        {"method": "*", "startAfter": "10s", "duration": "30s", "outage": {}},
        {"method": "/essc.platform.v1.CardService/*",
         "error": {"rates": [{"code": "UNAVAILABLE", "rate": 0.2}]}}
      ]
    }
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from essc.platform.v1 import platform_pb2 as pb
from essc_gateway.simplatform.faults import (
    ALL_METHODS,
    AnswerLost,
    ConnectionFailure,
    ConnectionMode,
    ErrorRate,
    Errors,
    Fault,
    FaultError,
    Hang,
    Latency,
    LatencyDistribution,
    Maintenance,
    Outage,
    Rule,
    Scenario,
)

ScenarioSource = pb.FaultScenario | Mapping[str, Any] | Path

_MODES: dict[pb.ConnectionFailureMode.ValueType, ConnectionMode] = {
    pb.CONNECTION_FAILURE_MODE_REFUSE: ConnectionMode.REFUSE,
    pb.CONNECTION_FAILURE_MODE_RESET: ConnectionMode.RESET,
}
_MODES_PB = {mode: value for value, mode in _MODES.items()}


def load_scenario(path: Path | str) -> pb.FaultScenario:
    """Reads and checks a scenario file; raises FaultError naming the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise FaultError(f"cannot read scenario file {path}: {error.strerror}") from error
    try:
        message = json_format.Parse(text, pb.FaultScenario())
    except json_format.ParseError as error:
        raise FaultError(f"scenario file {path}: {error}") from error
    scenario_from_proto(message)  # fails early, with the file named by the caller
    return message


def to_scenario(source: ScenarioSource | Scenario) -> Scenario:
    """A `Scenario` from a message, its JSON dict, a file path, or a `Scenario`."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Path):
        return scenario_from_proto(load_scenario(source))
    if isinstance(source, pb.FaultScenario):
        return scenario_from_proto(source)
    try:
        message = json_format.ParseDict(dict(source), pb.FaultScenario())
    except json_format.ParseError as error:
        raise FaultError(f"scenario: {error}") from error
    return scenario_from_proto(message)


def scenario_from_proto(message: pb.FaultScenario) -> Scenario:
    rules = []
    for index, rule in enumerate(message.rules):
        try:
            rules.append(_rule(rule))
        except FaultError as error:
            raise FaultError(f"rule {index}: {error}") from error
    return Scenario(rules=tuple(rules), seed=message.seed)


def scenario_to_proto(scenario: Scenario) -> pb.FaultScenario:
    return pb.FaultScenario(seed=scenario.seed, rules=[rule_to_proto(r) for r in scenario.rules])


def scenario_to_json(scenario: pb.FaultScenario) -> str:
    """The file form of a scenario (what `load_scenario` reads back)."""
    return json.dumps(json_format.MessageToDict(scenario), indent=2, ensure_ascii=False) + "\n"


def rule_to_proto(rule: Rule) -> pb.FaultRule:
    message = pb.FaultRule(method=rule.method)
    if rule.start_after:
        message.start_after.CopyFrom(duration(rule.start_after))
    if rule.duration is not None:
        message.duration.CopyFrom(duration(rule.duration))
    fault = rule.fault
    if isinstance(fault, Latency):
        message.latency.CopyFrom(_latency_to_proto(fault))
    elif isinstance(fault, Errors):
        message.error.rates.extend(pb.ErrorRate(code=r.code, rate=r.rate) for r in fault.rates)
    elif isinstance(fault, Outage):
        message.outage.SetInParent()
    elif isinstance(fault, Hang):
        message.hang.rate = fault.rate
    elif isinstance(fault, AnswerLost):
        message.answer_lost.rate = fault.rate
    elif isinstance(fault, Maintenance):
        message.maintenance.SetInParent()
    else:
        message.connection.mode = _MODES_PB[fault.mode]
    return message


def duration(delta: timedelta) -> Duration:
    message = Duration()
    message.FromTimedelta(delta)
    return message


def _rule(message: pb.FaultRule) -> Rule:
    start_after = _delta(message.start_after) if message.HasField("start_after") else None
    length = _delta(message.duration) if message.HasField("duration") else None
    return Rule(
        fault=_fault(message),
        method=message.method or ALL_METHODS,
        start_after=start_after or timedelta(0),
        duration=length or None,
    )


def _fault(message: pb.FaultRule) -> Fault:
    kind = message.WhichOneof("fault")
    if kind is None:
        raise FaultError("a rule needs a fault (latency, error, outage, hang, ...)")
    return _FAULT_READERS[kind](message)


def _connection(message: pb.ConnectionFault) -> ConnectionFailure:
    mode = _MODES.get(message.mode)
    if mode is None:
        raise FaultError("a connection fault needs a mode (REFUSE or RESET)")
    return ConnectionFailure(mode)


def _rate(message: pb.HangFault | pb.AnswerLostFault) -> float:
    return message.rate if message.HasField("rate") else 1.0


def _latency(message: pb.LatencyFault) -> Latency:
    kind = message.WhichOneof("distribution")
    if kind == "fixed":
        return Latency(base=_delta(message.fixed.delay), distribution=LatencyDistribution.FIXED)
    if kind == "uniform":
        return Latency(base=_delta(message.uniform.base), jitter=_delta(message.uniform.jitter))
    if kind == "normal":
        return Latency(
            base=_delta(message.normal.mean),
            stddev=_delta(message.normal.stddev),
            distribution=LatencyDistribution.NORMAL,
        )
    if kind == "lognormal":
        return Latency(
            base=_delta(message.lognormal.median),
            sigma=message.lognormal.sigma,
            distribution=LatencyDistribution.LOGNORMAL,
        )
    raise FaultError("a latency fault needs a distribution (fixed, uniform, normal, lognormal)")


def _latency_to_proto(latency: Latency) -> pb.LatencyFault:
    match latency.distribution:
        case LatencyDistribution.FIXED:
            return pb.LatencyFault(fixed=pb.FixedLatency(delay=duration(latency.base)))
        case LatencyDistribution.UNIFORM:
            uniform = pb.UniformLatency(
                base=duration(latency.base), jitter=duration(latency.jitter)
            )
            return pb.LatencyFault(uniform=uniform)
        case LatencyDistribution.NORMAL:
            normal = pb.NormalLatency(mean=duration(latency.base), stddev=duration(latency.stddev))
            return pb.LatencyFault(normal=normal)
        case LatencyDistribution.LOGNORMAL:
            lognormal = pb.LognormalLatency(median=duration(latency.base), sigma=latency.sigma)
            return pb.LatencyFault(lognormal=lognormal)


_FAULT_READERS: dict[str, Callable[[pb.FaultRule], Fault]] = {
    "latency": lambda m: _latency(m.latency),
    "error": lambda m: Errors(tuple(ErrorRate(r.code, r.rate) for r in m.error.rates)),
    "outage": lambda _: Outage(),
    "hang": lambda m: Hang(_rate(m.hang)),
    "answer_lost": lambda m: AnswerLost(_rate(m.answer_lost)),
    "maintenance": lambda _: Maintenance(),
    "connection": lambda m: _connection(m.connection),
}


def _delta(message: Duration) -> timedelta:
    if message.seconds < 0 or message.nanos < 0:
        raise FaultError("durations must not be negative")
    return message.ToTimedelta()
