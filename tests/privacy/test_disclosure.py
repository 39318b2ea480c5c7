"""A13(2): a holder's data leaves the gateway only through DiscloseHolder, to a named
recipient on one of the five grounds with a reference, and each disclosure is recorded so
that the bank can answer the holder (ListDisclosures); without a ground, a reference or a
recipient, no data and no record."""

from __future__ import annotations

import json

import grpc
import pytest

from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.liability.model import holder_ref
from essc_gateway.simplatform import Population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import adult, issue, rich
from tests.simplatform.test_platform_server import unknown_id
from tests.sql import count, fetch


def _disclose(person_id: str, **fields: object) -> opb.DiscloseHolderRequest:
    request = opb.DiscloseHolderRequest(
        bank_id="bank-a",
        social_security_number=person_id,
        recipient="Shenzhen Intermediate People's Court",
        ground=opb.DISCLOSURE_GROUND_COMPETENT_AUTHORITY,
        reference="(2026) Yue 03 Min Chu 1234",
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


async def test_a_disclosure_gives_the_data_and_is_recorded_with_its_ground(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    issued = await issue(gw, person, gw.a, clock.now())

    disclosed = await gw.operator.DiscloseHolder(_disclose(person.id_number), metadata=gw.ops)
    [card] = disclosed.cards
    assert card.essc_id == issued.card.essc_id
    assert (card.name, card.social_security_number, card.card_number) == (
        person.name, person.id_number, person.card_number
    )  # fmt: skip
    assert card.mobile_phone == person.mobile_phone

    history = await gw.operator.ListDisclosures(
        opb.ListDisclosuresRequest(bank_id="bank-a", social_security_number=person.id_number),
        metadata=gw.ops,
    )
    [recorded] = history.disclosures
    assert recorded.disclosure_id == disclosed.disclosure_id
    assert recorded.recipient == "Shenzhen Intermediate People's Court"
    assert recorded.ground == opb.DISCLOSURE_GROUND_COMPETENT_AUTHORITY
    assert recorded.reference == "(2026) Yue 03 Min Chu 1234"
    assert recorded.operator_id == "ops"
    assert {"name", "id_number", "mobile_phone", "card_number"} <= set(recorded.fields)
    # In the evidence log, without personal data.
    [entry] = await fetch(database, "SELECT body FROM evidence_log WHERE kind = 'DISCLOSURE'")
    body = bytes(entry["body"]).decode()
    assert disclosed.disclosure_id in body
    assert "COMPETENT_AUTHORITY" in body
    assert person.id_number not in body
    assert person.name not in body
    # The bank can show the holder the entry is theirs: the stored salt opens holder_ref.
    [row] = await fetch(database, "SELECT holder_token, salt FROM disclosures")
    ref = holder_ref("bank-a", row["holder_token"], bytes(row["salt"]))
    assert json.loads(body)["holder_ref"] == ref

    # Erased, the holder's history goes with the holder; the evidence entry stays.
    await gw.operator.EraseHolder(
        opb.EraseHolderRequest(
            bank_id="bank-a",
            social_security_number=person.id_number,
            ground=opb.ERASURE_GROUND_NO_CONSENT,
            reference="ticket-7",
        ),
        metadata=gw.ops,
    )
    assert await count(database, "disclosures") == 0
    assert await count(database, "evidence_log", "kind = 'DISCLOSURE'") == 1


async def test_no_ground_reference_or_recipient_no_data_and_no_record(
    gw: GatewayUnderTest, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    person = adult(population, clock.now().date())
    await issue(gw, person, gw.a, clock.now())
    for field, request in {
        "ground": _disclose(person.id_number, ground=0),
        "reference": _disclose(person.id_number, reference=""),
        "recipient": _disclose(person.id_number, recipient="   "),
    }.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gw.operator.DiscloseHolder(request, metadata=gw.ops)
        error = rich(refused.value)
        assert (error.code, set(error.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, {field})
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await gw.operator.DiscloseHolder(_disclose(unknown_id(population)), metadata=gw.ops)
    assert rich(unknown.value).reason == "HOLDER_NOT_FOUND"
    assert await count(database, "disclosures") == 0
    assert await count(database, "evidence_log", "kind = 'DISCLOSURE'") == 0
