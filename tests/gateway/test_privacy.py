"""Personal data never in clear in logs, error texts or the database (A13(1))."""

from __future__ import annotations

import logging

import grpc
import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.domain.passwords import initial_password
from essc_gateway.simplatform import Population
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest
from tests.gateway.flows import (
    STRONG_PASSWORD,
    adult,
    auth_token,
    change_to_strong_password,
    child_under_14,
    issue,
    latest_sms_code,
)
from tests.sql import stored_bytes


async def test_a13_a_full_journey_leaves_no_personal_data_in_logs_spans_or_the_database(
    gw: GatewayUnderTest,
    population: Population,
    clock: FakeClock,
    database: StoreLocation,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    today = clock.now().date()
    person = adult(population, today)
    await issue(gw, person, gw.a, clock.now())
    child, parent = child_under_14(population, today), adult(population, today, skip=1)
    await issue(
        gw,
        child,
        gw.a,
        clock.now(),
        guardian=pb.Guardian(
            name=parent.name,
            social_security_number=parent.id_number,
            mobile_phone=parent.mobile_phone,
            relation=pb.GUARDIAN_RELATION_PARENT,
            consents=True,
        ),
    )
    # Bad input that carries personal data: a wrong name, a mistyped ID, a bad phone.
    with pytest.raises(grpc.aio.AioRpcError) as bad_input:
        await gw.stub.Verify(
            pb.VerifyRequest(
                applicant=pb.Identity(
                    name=person.name + "1",
                    social_security_number=person.id_number[:-1] + "Z",
                    mobile_phone=person.mobile_phone + "99",
                ),
            ),
            metadata=gw.a,
        )
    await change_to_strong_password(gw, person, gw.a)
    token = await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_PAYMENT, sms=True)
    sms_code = await latest_sms_code(gw, person)
    await gw.stub.Query(
        pb.QueryRequest(
            auth_token=await auth_token(gw, person, gw.a, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
        ),
        metadata=gw.a,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Authenticate(
            pb.AuthenticateRequest(
                social_security_number=person.id_number,
                scenario=pb.BUSINESS_SCENARIO_VIEW_CARD,
                factors=pb.Factors(password="Wrong-Guess-1"),
            ),
            metadata=gw.a,
        )
    assert token

    secrets = {
        "guardian name": parent.name,
        "guardian id": parent.id_number,
        "guardian phone": parent.mobile_phone,
        "child name": child.name,
        "child id": child.id_number,
        "name": person.name,
        "id": person.id_number,
        "id tail": person.id_number[-8:],
        "phone": person.mobile_phone,
        "national phone": person.mobile_phone.removeprefix("+86"),
        "card number": person.card_number,
        "initial password": initial_password(person.id_number),
        "new password": STRONG_PASSWORD,
        "wrong password": "Wrong-Guess-1",
        "sms code": sms_code,
    }
    logs = caplog.text
    spans = "".join(span.to_json() for span in gw.spans.get_finished_spans())
    assert "GatewayService/Authenticate" in spans  # the spans were exported
    error_text = "".join(
        (e.details() or "") + repr(e.trailing_metadata()) for e in (raised.value, bad_input.value)
    )
    stored = await stored_bytes(database)
    assert "bank=bank-a" in logs  # the access log did run
    for label, value in secrets.items():
        assert value not in logs, f"{label} in logs"
        assert value not in spans, f"{label} in a span"
        assert value not in error_text, f"{label} in an error"
        assert value.encode() not in stored, f"{label} in the database"
