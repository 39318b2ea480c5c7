"""Evidence bundles checked offline, and every rewrite of history someone with database
access could try, detected by whoever kept one earlier checkpoint; forged, damaged or
truncated bundles get a verdict naming what failed, never a traceback."""

from __future__ import annotations

import base64
import json
import random
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc.platform.v1 import platform_pb2 as ppb
from essc_gateway.evidence.verify import verify_bundle
from essc_gateway.simplatform import Population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.evidence.attacks import edit_entry, rewrite_history
from tests.gateway.flows import adult, identity, live_sample, rich, ts
from tests.gateway.test_maintenance import announce
from tests.gateway.test_resilience import set_faults
from tests.sql import fetch

HOUR = timedelta(hours=1)


class Evidence:
    """A small history: two refusals in an announced window, platform failures in an outage,
    a typhoon declared over some of them; the checkpoint kept before anyone tampered."""

    def __init__(self, gw: GatewayUnderTest) -> None:
        self.gw = gw
        self.request_ids: list[str] = []
        self.kept = b""
        self.key = ""
        self.window_id = ""

    async def bundle(self) -> bytes:
        size = int(self.kept.decode().splitlines()[1])
        reply = await self.gw.operator.GetEvidenceBundle(
            opb.GetEvidenceBundleRequest(ledger_request_ids=self.request_ids, known_sizes=[size]),
            metadata=self.gw.ops,
        )
        return reply.bundle


async def _fail(gw: GatewayUnderTest, population: Population, clock: FakeClock, n: int) -> str:
    person = adult(population, clock.now().date(), skip=n)
    request = pb.VerifyRequest(
        applicant=identity(person),
        physical_card_number=person.card_number,
        biometric_sample=live_sample(person),
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Verify(request, metadata=gw.a, timeout=5)
    return rich(raised.value).metadata["ledger_request_id"]


@pytest.fixture
async def evidence(gw: GatewayUnderTest, population: Population, clock: FakeClock) -> Evidence:
    found = Evidence(gw)
    start = clock.now()
    window = await announce(gw, start + 2 * HOUR, start + 3 * HOUR)
    found.window_id = window.window_id
    clock.advance(2 * HOUR + timedelta(minutes=5))
    found.request_ids += [await _fail(gw, population, clock, n) for n in range(2)]
    clock.advance(HOUR)
    await set_faults(gw, {"method": "*", "outage": {}})
    for n in range(2, 7):
        clock.advance(timedelta(seconds=30))
        found.request_ids.append(await _fail(gw, population, clock, n))
    await gw.operator.DeclareIncident(
        opb.DeclareIncidentRequest(
            kind=opb.INCIDENT_KIND_FLOOD,
            starts_at=ts(clock.now() - timedelta(minutes=1)),
            ends_at=ts(clock.now() + timedelta(minutes=1)),
            description="Flood in the machine room",
        ),
        metadata=gw.ops,
    )
    await gw.control.ClearFaults(ppb.ClearFaultsRequest())
    await gw.gateway.settle_ledger()
    reply = await gw.operator.GetCheckpoint(opb.GetCheckpointRequest(), metadata=gw.ops)
    found.kept, found.key = reply.checkpoint.encode(), reply.verifier_key
    with pytest.raises(grpc.aio.AioRpcError):  # the log grows past the kept checkpoint
        await gw.stub.Verify(pb.VerifyRequest(), metadata=gw.a)
    return found


async def test_an_honest_bundle_verifies_and_names_each_clause(evidence: Evidence) -> None:
    verdict = verify_bundle(await evidence.bundle(), evidence.key, [evidence.kept])
    assert verdict.problems == []
    clauses = {r.request_id: r.clause.value for r in verdict.requests}
    # Two refusals in the window; five platform failures 30 s apart, the last three (the
    # minute before the flood was declared, and its declaration's moment) under the flood.
    expected = ["A16(1)(a)"] * 2 + ["A16(1)(b)"] * 2 + ["A16(1)(c)"] * 3
    assert [clauses[r] for r in evidence.request_ids] == expected
    amended = {r.request_id for r in verdict.requests if len(r.history) > 1}
    assert amended == set(evidence.request_ids[4:])


Attack = Callable[[StoreLocation, Evidence], Awaitable[None]]


async def _rechain_a_record(database: StoreLocation, evidence: Evidence) -> None:
    await rewrite_history(
        database, "LIABILITY_RECORD", evidence.request_ids[2], lambda e: {**e, "clause": "BANK"}
    )


async def _move_a_window(database: StoreLocation, evidence: Evidence) -> None:
    def earlier(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "announced_at": "2026-10-01T00:00:00+00:00"}

    await rewrite_history(database, "WINDOW_VERSION", evidence.window_id, earlier)


async def _move_an_outage(database: StoreLocation, evidence: Evidence) -> None:
    [row] = await fetch(database, "SELECT outage_id FROM outages LIMIT 1")
    await rewrite_history(
        database,
        "OUTAGE_OPENED",
        row["outage_id"],
        lambda e: {**e, "started_at": "2026-11-02T09:00:00+00:00"},
    )


async def _change_an_incident(database: StoreLocation, evidence: Evidence) -> None:
    [row] = await fetch(database, "SELECT incident_id FROM incidents")
    await rewrite_history(
        database, "INCIDENT", row["incident_id"], lambda e: {**e, "incident_kind": "HACKER_ATTACK"}
    )


async def _cut_the_tail(database: StoreLocation, evidence: Evidence) -> None:
    # Two entries the kept checkpoint covers (entries after it, such as the access log's
    # of later operator calls, may be cut without contradicting it).
    kept_size = int(evidence.kept.decode().splitlines()[1])
    await rewrite_history(database, keep=kept_size - 2)


@pytest.mark.parametrize(
    "attack",
    [_rechain_a_record, _move_a_window, _move_an_outage, _change_an_incident],
    ids=["rechained-record", "edited-window", "edited-outage", "edited-incident"],
)
async def test_a_rewritten_history_is_detected_by_a_kept_checkpoint(
    evidence: Evidence, database: StoreLocation, attack: Attack
) -> None:
    await attack(database, evidence)
    verdict = verify_bundle(await evidence.bundle(), evidence.key, [evidence.kept])
    assert not verdict.ok
    assert any("history was rewritten" in p for p in verdict.problems), verdict.problems


async def test_a_log_cut_short_is_detected_by_a_kept_checkpoint(
    evidence: Evidence, database: StoreLocation
) -> None:
    await _cut_the_tail(database, evidence)
    verdict = verify_bundle(await evidence.bundle(), evidence.key, [evidence.kept])
    assert any("cut short" in p or "rewritten" in p for p in verdict.problems), verdict.problems


async def test_an_entry_edited_in_place_is_not_in_the_signed_log(
    evidence: Evidence, database: StoreLocation
) -> None:
    await edit_entry(
        database, "WINDOW_VERSION", evidence.window_id, lambda e: {**e, "rpcs": ["Issue"]}
    )
    verdict = verify_bundle(await evidence.bundle(), evidence.key)
    assert any("not in the log of the checkpoint" in p for p in verdict.problems), verdict.problems


# ---------------------------------------------------------------- forged bundles


def _edit(bundle: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    data = json.loads(bundle)
    change(data)
    return json.dumps(data).encode()


def _entries_of(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in data["entries"] if json.loads(e["body"])["kind"] == kind]


def _forge_clause(data: dict[str, Any]) -> None:
    entry = _entries_of(data, "LIABILITY_RECORD")[0]
    entry["body"] = entry["body"].replace('"clause":"A16(1)(a)"', '"clause":"A16(1)(c)"')


def _drop_window(data: dict[str, Any]) -> None:
    data["entries"] = [e for e in data["entries"] if e not in _entries_of(data, "WINDOW_VERSION")]


def _drop_record(data: dict[str, Any]) -> None:
    data["entries"].remove(_entries_of(data, "LIABILITY_RECORD")[0])


def _drop_consistency(data: dict[str, Any]) -> None:
    data["consistency"] = []


def _resign_root(data: dict[str, Any]) -> None:
    lines = data["checkpoint"].split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    data["checkpoint"] = "\n".join(lines)


@pytest.mark.parametrize(
    ("forge", "verdict_says"),
    [
        (_forge_clause, "not in the log of the checkpoint"),
        (_drop_window, "is not in the bundle"),
        (_drop_record, "no liability record in the bundle"),
        (_drop_consistency, "no consistency proof"),
        (_resign_root, "checkpoint:"),
    ],
    ids=["clause", "window-removed", "record-removed", "consistency-removed", "root"],
)
async def test_a_forged_bundle_gets_a_verdict_naming_what_failed(
    evidence: Evidence, forge: Callable[[dict[str, Any]], None], verdict_says: str
) -> None:
    forged = _edit(await evidence.bundle(), forge)
    verdict = verify_bundle(forged, evidence.key, [evidence.kept])
    assert not verdict.ok
    assert any(verdict_says in p for p in verdict.problems), verdict.problems


async def test_damaged_and_truncated_bundles_never_raise(evidence: Evidence) -> None:
    bundle = await evidence.bundle()
    assert "not JSON" in verify_bundle(bundle[: len(bundle) // 2], evidence.key).problems[0]
    assert verify_bundle(bundle, "someone+00000000+AQ==").problems[0].startswith("verifier key")
    rng = random.Random(7)
    for _ in range(300):
        damaged = bytearray(bundle)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        verdict = verify_bundle(bytes(damaged), evidence.key, [evidence.kept])
        assert not verdict.ok or bytes(damaged) == bundle


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_get_a_verdict(data: bytes) -> None:
    key = "essc-gateway/evidence+5b8d3c1e+AYyLHHbKa7jX3XUrwXQy2wP3XjUeI8rCn2wC+Z7GNLt+"
    verdict = verify_bundle(data, key)
    assert not verdict.ok


async def test_the_cli_verdict_and_exit_code(evidence: Evidence, tmp_path: Path) -> None:
    import asyncio  # noqa: PLC0415

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(await evidence.bundle())
    bad.write_bytes(_edit(good.read_bytes(), _forge_clause))
    kept = tmp_path / "kept.note"
    kept.write_bytes(evidence.kept)

    async def run(path: Path) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "essc_gateway.cli", "evidence", "verify", str(path),
            "--key", evidence.key, "--checkpoint", str(kept),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        assert b"Traceback" not in err
        return process.returncode or 0, out.decode()

    code, out = await run(good)
    assert code == 0
    assert "VERIFIED" in out
    code, out = await run(bad)
    assert code == 1
    assert "FAILED" in out
    assert "not in the log of the checkpoint" in out
