"""The platform's own rules, on `PlatformState` directly: keyed replays, SMS tries, K1."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

from essc.platform.v1 import platform_pb2 as pb
from essc_gateway.simplatform import (
    ERROR_DOMAIN,
    IssueOutcome,
    Person,
    PlatformState,
    Population,
    PreconditionError,
)
from essc_gateway.simplatform.population import initial_password
from essc_gateway.simplatform.state import IssueResult, PasswordChange
from essc_gateway.testing import FakeClock
from tests.simplatform.helpers import Stubs, failure, issue_request

TTL = timedelta(minutes=5)
NEW_PASSWORD = "Blue-Harbour-7"
OTHER_PASSWORD = "Green-Valley-42"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(population: Population, clock: FakeClock) -> PlatformState:
    return PlatformState(population, clock=clock, rng=random.Random(3), sms_code_ttl=TTL)


@pytest.fixture
def holder(population: Population) -> Person:
    return population.samples(population.as_of, 1)[0]


def key_reused(error: pytest.ExceptionInfo[PreconditionError]) -> bool:
    return error.value.reason == "IDEMPOTENCY_KEY_REUSED"


# --- K1: the simulator's own initial password ----------------------------------------------


@pytest.mark.parametrize(
    ("id_number", "expected"),
    [
        ("11010519491231002X", "12310021"),  # K1: a trailing X becomes 1
        ("440524188001010014", "01010014"),
    ],
)
def test_initial_password_is_the_last_8_characters_k1(id_number: str, expected: str) -> None:
    assert initial_password(id_number) == expected


@pytest.mark.parametrize("id_number", ["", "1231002X", "11010519491231002X0"])
def test_initial_password_needs_an_18_character_id(id_number: str) -> None:
    with pytest.raises(ValueError, match="18 characters"):
        initial_password(id_number)


def test_the_state_checks_the_initial_password_against_k1(
    population: Population, clock: FakeClock
) -> None:
    base = population.people[0]
    with_x = replace(base, id_number="11010519491231002X")
    register = Population([with_x, *population.people[1:]])
    state = PlatformState(register, clock=clock, rng=random.Random(3))
    first = state.verify_password(with_x.id_number, "12310021")
    assert (first.matched, first.is_initial) == (True, True)
    assert not state.verify_password(with_x.id_number, "1231002X").matched


# --- ChangePassword: a key replays only the identical request ------------------------------


def test_a_password_key_replays_only_the_identical_request(
    state: PlatformState, holder: Person
) -> None:
    initial = initial_password(holder.id_number)
    changed = state.change_password(holder.id_number, initial, NEW_PASSWORD, "c1")
    assert changed.changed
    assert state.change_password(holder.id_number, initial, NEW_PASSWORD, "c1") == changed

    # A wrong current password under a known key is not a success (no free guesses).
    for current, new in (
        ("wrong-guess", OTHER_PASSWORD),
        ("wrong-guess", NEW_PASSWORD),
        (initial, OTHER_PASSWORD),
        (NEW_PASSWORD, NEW_PASSWORD),
    ):
        with pytest.raises(PreconditionError) as refused:
            state.change_password(holder.id_number, current, new, "c1")
        assert key_reused(refused)
    assert state.verify_password(holder.id_number, NEW_PASSWORD).matched
    assert not state.verify_password(holder.id_number, OTHER_PASSWORD).matched
    assert state.operation("c1") == changed


def test_a_failed_change_commits_nothing_under_its_key(
    state: PlatformState, holder: Person
) -> None:
    wrong = state.change_password(holder.id_number, "wrong-guess", NEW_PASSWORD, "c1")
    assert wrong == PasswordChange(changed=False, reason="WRONG_CURRENT_PASSWORD")
    assert state.operation("c1") is None
    again = state.change_password(holder.id_number, "wrong-guess", NEW_PASSWORD, "c1")
    assert again == wrong


def test_no_password_is_kept_in_clear(state: PlatformState, holder: Person) -> None:
    initial = initial_password(holder.id_number)
    state.change_password(holder.id_number, initial, NEW_PASSWORD, "c1")
    with pytest.raises(PreconditionError):
        state.change_password(holder.id_number, "wrong-guess", OTHER_PASSWORD, "c1")
    # Everything the state holds, as a memory dump would show it.
    everything = pickle.dumps(state._r)
    for secret in (NEW_PASSWORD, OTHER_PASSWORD, "wrong-guess"):
        assert secret.encode() not in everything


async def test_a_reused_password_key_is_failed_precondition_with_error_info(
    data: Stubs, person: Person
) -> None:
    def change(current: str, new: str) -> pb.ChangePasswordRequest:
        return pb.ChangePasswordRequest(
            id_number=person.id_number,
            current_password=current,
            new_password=new,
            idempotency_key="bank-a:c1",
        )

    changed = await data.auth.ChangePassword(
        change(initial_password(person.id_number), NEW_PASSWORD)
    )
    assert changed.changed
    reused = await failure(data.auth.ChangePassword(change("wrong-guess", OTHER_PASSWORD)))
    assert (reused.code, reused.reason, reused.domain) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
        ERROR_DOMAIN,
    )
    for secret in (person.id_number, "wrong-guess", OTHER_PASSWORD, NEW_PASSWORD):
        assert secret not in reused.message


# --- IssueCard and TerminateCard keys ------------------------------------------------------


def issue(state: PlatformState, person: Person, key: str, **changes: str) -> IssueResult:
    fields = {
        "bank_id": "bank-a",
        "id_number": person.id_number,
        "name": person.name,
        "mobile_phone": person.mobile_phone,
        "card_number": person.card_number,
        "guardian_id_number": "",
    }
    fields.update(changes)
    return state.issue_card(idempotency_key=key, **fields)


@pytest.mark.parametrize(
    "field", ["bank_id", "name", "mobile_phone", "card_number", "guardian_id_number"]
)
def test_an_issue_key_replays_only_the_identical_request(
    state: PlatformState, population: Population, holder: Person, field: str
) -> None:
    first = issue(state, holder, "k1")
    assert first.outcome is IssueOutcome.ISSUED
    replay = issue(state, holder, "k1", name=f" {holder.name} ")  # the same name, normalised
    assert (replay.outcome, replay.card) == (IssueOutcome.REPLAYED, first.card)
    other = {
        "bank_id": "bank-b",
        "name": holder.name + "华",
        "mobile_phone": "+8613800138000",
        "card_number": "A00000000",
        "guardian_id_number": population.people[-1].id_number,
    }[field]
    with pytest.raises(PreconditionError) as refused:
        issue(state, holder, "k1", **{field: other})
    assert key_reused(refused)


def test_a_terminate_key_replays_only_the_identical_request(
    state: PlatformState, population: Population, holder: Person
) -> None:
    first = state.issue_card(
        idempotency_key="k1",
        bank_id="bank-a",
        id_number=holder.id_number,
        name=holder.name,
        mobile_phone=holder.mobile_phone,
        card_number=holder.card_number,
    ).card
    second_holder = population.samples(population.as_of, 2)[1]
    second = state.issue_card(
        idempotency_key="k2",
        bank_id="bank-a",
        id_number=second_holder.id_number,
        name=second_holder.name,
        mobile_phone=second_holder.mobile_phone,
        card_number=second_holder.card_number,
    ).card
    ended = state.terminate_card(first.essc_id, "bank-a", "t1")
    assert state.terminate_card(first.essc_id, "bank-a", "t1") == ended
    with pytest.raises(PreconditionError) as refused:
        state.terminate_card(second.essc_id, "bank-a", "t1")
    assert key_reused(refused)
    assert state.get_card(second.essc_id).status == "ACTIVE"


async def test_a_reused_issue_key_is_failed_precondition(data: Stubs, person: Person) -> None:
    await data.cards.IssueCard(issue_request(person, "k1"))
    changed = issue_request(person, "k1")
    changed.card_number = "A00000000"
    reused = await failure(data.cards.IssueCard(changed))
    assert (reused.code, reused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )


# --- SMS codes: a new code does not buy new guesses ----------------------------------------


def sent_code(state: PlatformState, person: Person, purpose: str = "LOGIN") -> str:
    state.send_sms_code(person.id_number, purpose)
    return state.sms_inbox(person.mobile_phone)[-1].code


def wrong_for(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def reason(state: PlatformState, person: Person, code: str, purpose: str = "LOGIN") -> str:
    check = state.verify_sms_code(person.id_number, code, purpose)
    return "MATCHED" if check.matched else check.reason


def test_resending_does_not_reset_the_wrong_tries(
    state: PlatformState, holder: Person, clock: FakeClock
) -> None:
    for _ in range(5):  # guess, ask for a new code, guess again...
        code = sent_code(state, holder)
        assert reason(state, holder, wrong_for(code)) in {"CODE_MISMATCH", "TOO_MANY_ATTEMPTS"}
        clock.advance(timedelta(seconds=10))
    code = sent_code(state, holder)
    assert reason(state, holder, code) == "TOO_MANY_ATTEMPTS"
    # Other purposes keep their own count.
    assert reason(state, holder, sent_code(state, holder, "PAYMENT"), "PAYMENT") == "MATCHED"


def test_at_most_max_wrong_tries_in_any_ttl_window(
    state: PlatformState, holder: Person, clock: FakeClock
) -> None:
    code = sent_code(state, holder)
    clock.advance(TTL - timedelta(seconds=2))
    wrong_at = clock.now()
    reasons = [reason(state, holder, wrong_for(code)) for _ in range(3)]
    assert reasons == ["CODE_MISMATCH"] * 3
    clock.advance(timedelta(seconds=2))  # the first code has just expired
    assert reason(state, holder, code) == "CODE_EXPIRED"
    code = sent_code(state, holder)  # a fresh code, seconds after three wrong tries
    assert reason(state, holder, wrong_for(code)) == "TOO_MANY_ATTEMPTS"
    clock.advance(wrong_at + TTL - timedelta(seconds=1) - clock.now())
    assert reason(state, holder, code) == "TOO_MANY_ATTEMPTS"
    clock.advance(timedelta(seconds=1))  # the three wrong tries are now a TTL old
    assert reason(state, holder, code) == "MATCHED"


def test_a_right_code_clears_the_earlier_wrong_tries(state: PlatformState, holder: Person) -> None:
    code = sent_code(state, holder)
    assert [reason(state, holder, wrong_for(code)) for _ in range(2)] == ["CODE_MISMATCH"] * 2
    assert reason(state, holder, code) == "MATCHED"
    code = sent_code(state, holder)
    assert [reason(state, holder, wrong_for(code)) for _ in range(3)] == ["CODE_MISMATCH"] * 3
    assert reason(state, holder, code) == "TOO_MANY_ATTEMPTS"
