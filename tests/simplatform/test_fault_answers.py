"""Faults at the gRPC level, over real sockets: what a caller sees, and what it can read."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from essc.platform.v1 import platform_pb2 as pb
from essc.platform.v1 import platform_pb2_grpc as pb_grpc
from essc_gateway.simplatform import (
    ERROR_DOMAIN,
    Person,
    Population,
    SimulatedPlatform,
)
from essc_gateway.simplatform.population import initial_password
from essc_gateway.testing import FakeClock
from tests.simplatform.helpers import (
    CHECK_REAL_NAME,
    GET_ACCOUNTS,
    ISSUE_CARD,
    Stubs,
    failure,
    issue_request,
    name_check,
    outcome,
    scenario,
)

SECOND = timedelta(seconds=1)


async def accounts(data: Stubs, person: Person) -> pb.GetAccountsResponse:
    return await data.records.GetAccounts(pb.GetAccountsRequest(id_number=person.id_number))


async def test_injected_errors_are_answered_before_the_handler_with_error_info(
    platform: SimulatedPlatform, data: Stubs, person: Person
) -> None:
    await platform.apply_scenario(
        scenario({"method": ISSUE_CARD, "error": {"rates": [{"code": "INTERNAL", "rate": 1}]}})
    )
    error = await failure(data.cards.IssueCard(issue_request(person, "k-error")))
    assert error.code == grpc.StatusCode.INTERNAL
    assert (error.reason, error.domain) == ("INJECTED_ERROR", ERROR_DOMAIN)
    assert error.retry_after is None
    # Not processed: nothing was committed under the key.
    found = await data.operations.GetOperation(pb.GetOperationRequest(idempotency_key="k-error"))
    assert not found.found
    assert (await accounts(data, person)).pension_balance_fen == person.pension_balance_fen


async def test_error_rates_fall_in_a_binomial_band_and_replay_with_the_seed(
    population: Population, person: Person
) -> None:
    faults = scenario(
        {"method": CHECK_REAL_NAME, "error": {"rates": [{"code": "UNAVAILABLE", "rate": 0.3}]}},
        seed=2024,
    )
    runs = []
    for _ in range(2):
        async with (
            SimulatedPlatform(population, clock=FakeClock()) as platform,
            grpc.aio.insecure_channel(platform.address) as channel,
        ):
            await platform.apply_scenario(faults)
            identity = pb_grpc.IdentityServiceStub(channel)
            runs.append(
                [await outcome(identity.CheckRealName(name_check(person))) for _ in range(200)]
            )
    failed = runs[0].count("UNAVAILABLE")
    # Binomial(200, 0.3): mean 60, sd 6.5; the band is more than 4 sd each way.
    assert 30 <= failed <= 90
    assert set(runs[0]) == {"OK", "UNAVAILABLE"}
    assert runs[0] == runs[1]


async def test_an_outage_answers_unavailable_with_the_time_to_its_end(
    platform: SimulatedPlatform, data: Stubs, person: Person, clock: FakeClock
) -> None:
    await platform.apply_scenario(scenario({"duration": "30s", "outage": {}}))
    clock.advance(10 * SECOND)
    error = await failure(accounts(data, person))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.reason == "OUTAGE"
    assert error.retry_after == pytest.approx(20.0)
    # Without a duration the end is unknown: no RetryInfo.
    await platform.apply_scenario(scenario({"outage": {}}))
    error = await failure(accounts(data, person))
    assert (error.reason, error.retry_after) == ("OUTAGE", None)


async def test_the_platforms_maintenance_says_when_it_ends(
    platform: SimulatedPlatform, data: Stubs, person: Person, clock: FakeClock
) -> None:
    await platform.apply_scenario(
        scenario({"startAfter": "5s", "duration": "60s", "maintenance": {}})
    )
    await accounts(data, person)  # announced, not begun
    clock.advance(20 * SECOND)
    error = await failure(data.cards.IssueCard(issue_request(person, "k-maintenance")))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert (error.reason, error.domain) == ("MAINTENANCE", ERROR_DOMAIN)
    assert error.retry_after == pytest.approx(45.0)
    assert error.metadata["ends_at"] == (clock.now() + 45 * SECOND).isoformat()
    clock.advance(45 * SECOND)
    await accounts(data, person)


async def test_a_hang_gives_no_answer_before_the_deadline_and_processes_nothing(
    platform: SimulatedPlatform, data: Stubs, person: Person
) -> None:
    await platform.apply_scenario(scenario({"method": ISSUE_CARD, "hang": {}}))
    started = time.monotonic()
    error = await failure(data.cards.IssueCard(issue_request(person, "k-hang"), timeout=0.3))
    assert time.monotonic() - started >= 0.3
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert not error.has_details
    found = await data.operations.GetOperation(pb.GetOperationRequest(idempotency_key="k-hang"))
    assert not found.found
    await accounts(data, person)  # other methods answer


async def test_an_answer_lost_write_is_committed_and_found_by_its_key(
    platform: SimulatedPlatform, data: Stubs, person: Person
) -> None:
    await platform.apply_scenario(scenario({"method": ISSUE_CARD, "answerLost": {}}))
    error = await failure(data.cards.IssueCard(issue_request(person, "k-lost"), timeout=0.3))
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert not error.has_details  # in doubt: nothing says the platform refused it
    found = await data.operations.GetOperation(pb.GetOperationRequest(idempotency_key="k-lost"))
    assert found.found
    assert found.WhichOneof("result") == "issue_card"
    assert found.issue_card.outcome == pb.ISSUE_OUTCOME_ISSUED
    card = (await data.cards.GetCard(pb.GetCardRequest(essc_id=found.issue_card.card.essc_id))).card
    assert card.status == pb.CARD_STATUS_ACTIVE
    await platform.clear_faults()
    replay = await data.cards.IssueCard(issue_request(person, "k-lost"))
    assert replay.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert replay.card.essc_id == card.essc_id


async def test_get_operation_returns_terminations_and_password_changes(
    data: Stubs, person: Person
) -> None:
    issued = await data.cards.IssueCard(issue_request(person, "k-issue"))
    terminate = pb.TerminateCardRequest(
        essc_id=issued.card.essc_id, bank_id="bank-a", idempotency_key="k-terminate"
    )
    await data.cards.TerminateCard(terminate)
    found = await data.operations.GetOperation(
        pb.GetOperationRequest(idempotency_key="k-terminate")
    )
    assert found.terminate_card.card.status == pb.CARD_STATUS_TERMINATED
    change = pb.ChangePasswordRequest(
        id_number=person.id_number,
        current_password=initial_password(person.id_number),
        new_password="Tr1cky-Harbour!",
        idempotency_key="k-password",
    )
    changed = await data.auth.ChangePassword(change)
    found = await data.operations.GetOperation(pb.GetOperationRequest(idempotency_key="k-password"))
    assert found.change_password == changed
    assert changed.changed


async def test_latency_from_a_scenario_delays_the_handler(
    platform: SimulatedPlatform, data: Stubs, person: Person
) -> None:
    await platform.apply_scenario(
        scenario({"method": GET_ACCOUNTS, "latency": {"fixed": {"delay": "0.2s"}}})
    )
    started = time.monotonic()
    await accounts(data, person)
    assert time.monotonic() - started >= 0.2


async def test_set_latency_is_a_standing_latency_until_cleared(
    data: Stubs, control: pb_grpc.ControlServiceAsyncStub, person: Person
) -> None:
    fifty_ms = Duration(nanos=50_000_000)
    await control.SetLatency(
        pb.SetLatencyRequest(method=CHECK_REAL_NAME, base=fifty_ms, jitter=Duration(nanos=10**7))
    )
    started = time.monotonic()
    await data.identity.CheckRealName(name_check(person))
    assert time.monotonic() - started >= 0.05
    # Zero latency clears the entry; "*" applies to every platform method.
    await control.SetLatency(pb.SetLatencyRequest(method=CHECK_REAL_NAME))
    await control.SetLatency(pb.SetLatencyRequest(method="*", base=fifty_ms))
    started = time.monotonic()
    await accounts(data, person)
    assert time.monotonic() - started >= 0.05
    await control.ClearFaults(pb.ClearFaultsRequest())
    status = await control.GetFaultStatus(pb.GetFaultStatusRequest())
    assert not status.active_rules


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (pb.SetLatencyRequest(method="CheckRealName", base={"nanos": 1}), "INVALID_FAULT"),
        (pb.SetLatencyRequest(method="*", base={"seconds": -1}), "INVALID_FAULT"),
        (pb.SetLatencyRequest(), "FIELD_REQUIRED"),
    ],
)
async def test_set_latency_rejects_bad_input(
    control: pb_grpc.ControlServiceAsyncStub, request_: pb.SetLatencyRequest, reason: str
) -> None:
    error = await failure(control.SetLatency(request_))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


async def test_every_call_that_reaches_the_server_is_counted(
    platform: SimulatedPlatform,
    data: Stubs,
    control: pb_grpc.ControlServiceAsyncStub,
    person: Person,
) -> None:
    await platform.apply_scenario(scenario({"method": GET_ACCOUNTS, "outage": {}}))
    await failure(accounts(data, person))
    await data.identity.CheckRealName(name_check(person))
    await data.operations.GetOperation(pb.GetOperationRequest(idempotency_key="nothing"))
    await control.GetFaultStatus(pb.GetFaultStatusRequest())
    counts = await control.GetCallCounts(pb.GetCallCountsRequest())
    assert dict(counts.counts) == {
        GET_ACCOUNTS: 1,
        CHECK_REAL_NAME: 1,
        "/essc.platform.v1.OperationService/GetOperation": 1,
    }
    assert counts.connections_accepted >= 1
    await control.ResetCallCounts(pb.ResetCallCountsRequest())
    counts = await control.GetCallCounts(pb.GetCallCountsRequest())
    assert not counts.counts
    assert counts.connections_accepted == 0


async def test_the_fault_status_shows_the_active_rules_and_their_remaining_time(
    platform: SimulatedPlatform, control: pb_grpc.ControlServiceAsyncStub, clock: FakeClock
) -> None:
    assert not (await control.GetFaultStatus(pb.GetFaultStatusRequest())).HasField("scenario")
    request = pb.SetFaultScenarioRequest(
        scenario=pb.FaultScenario(
            seed=9,
            rules=[
                pb.FaultRule(method="*", duration={"seconds": 30}, outage=pb.OutageFault()),
                pb.FaultRule(
                    method=ISSUE_CARD, start_after={"seconds": 60}, hang=pb.HangFault(rate=0.5)
                ),
            ],
        )
    )
    await control.SetFaultScenario(request)
    clock.advance(12 * SECOND)
    status = await control.GetFaultStatus(pb.GetFaultStatusRequest())
    assert status.scenario.seed == 9
    assert status.elapsed.ToTimedelta() == 12 * SECOND
    assert [a.index for a in status.active_rules] == [0]
    assert status.active_rules[0].remaining.ToTimedelta() == 18 * SECOND
    clock.advance(60 * SECOND)
    status = await control.GetFaultStatus(pb.GetFaultStatusRequest())
    assert [a.index for a in status.active_rules] == [1]
    assert not status.active_rules[0].HasField("remaining")
    assert status.active_rules[0].rule.hang.rate == 0.5
    await control.ClearFaults(pb.ClearFaultsRequest())
    assert not (await control.GetFaultStatus(pb.GetFaultStatusRequest())).HasField("scenario")


@pytest.mark.parametrize(
    "rule",
    [
        pb.FaultRule(method="IssueCard", outage=pb.OutageFault()),
        pb.FaultRule(method="*"),
        pb.FaultRule(error=pb.ErrorFault(rates=[pb.ErrorRate(code="SLOW", rate=0.1)])),
        pb.FaultRule(latency=pb.LatencyFault()),
        pb.FaultRule(connection=pb.ConnectionFault()),
        pb.FaultRule(start_after={"seconds": -1}, outage=pb.OutageFault()),
    ],
)
async def test_a_scenario_that_cannot_apply_is_invalid_argument(
    control: pb_grpc.ControlServiceAsyncStub, rule: pb.FaultRule
) -> None:
    request = pb.SetFaultScenarioRequest(scenario=pb.FaultScenario(rules=[rule]))
    error = await failure(control.SetFaultScenario(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_FAULT"
    assert error.message.startswith("rule 0: ")


async def test_the_platforms_own_refusals_carry_error_info(
    data: Stubs, person: Person, population: Population
) -> None:
    missing_card = await failure(data.cards.GetCard(pb.GetCardRequest(essc_id="E" + "0" * 20)))
    assert (missing_card.code, missing_card.reason) == (grpc.StatusCode.NOT_FOUND, "CARD_NOT_FOUND")
    empty = await failure(data.records.GetAccounts(pb.GetAccountsRequest()))
    assert (empty.code, empty.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")
    assert empty.metadata == {"field": "id_number"}
    issued = await data.cards.IssueCard(issue_request(person, "k-own"))
    other_bank = await failure(
        data.cards.TerminateCard(
            pb.TerminateCardRequest(
                essc_id=issued.card.essc_id, bank_id="bank-b", idempotency_key="k-b"
            )
        )
    )
    assert other_bank.code == grpc.StatusCode.PERMISSION_DENIED
    assert other_bank.reason == "CARD_HELD_BY_OTHER_BANK"
    stranger = population.people[-1]
    reused = await failure(data.cards.IssueCard(issue_request(stranger, "k-own")))
    assert (reused.code, reused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    for error in (missing_card, empty, other_bank, reused):
        assert error.domain == ERROR_DOMAIN
        assert person.id_number not in error.message
        assert person.id_number not in str(error.metadata)
