"""Keys through a real gateway and its simulated platform, on SQLite and PostgreSQL: the root
in an HSM (SoftHSM2 over PKCS#11), one bank on the default suite and one on the national
(SM4-GCM + HMAC-SM3); issuance and authentication work for both, each card's fields are
sealed under its bank's suite, and the request path never calls the HSM."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.config import BankConfig
from essc_gateway.crypto import token_digest
from essc_gateway.keys.suites import Suite
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import make_config, running_gateway
from tests.gateway.flows import adult, auth_token, change_to_strong_password, issue
from tests.hsm import new_root

SM = Suite.SM4_GCM_HMAC_SM3


@pytest.mark.hsm
async def test_both_suites_end_to_end_with_the_root_in_an_hsm(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    base = make_config(database)
    banks = (base.banks[0], BankConfig("bank-b", token_sha256=base.banks[1].token_sha256, suite=SM))
    config = make_config(database, root_key=new_root(), banks=banks)
    async with running_gateway(platform, clock, config) as gw:
        keys = gw.gateway.keys
        assert keys is not None
        unwraps_at_start = keys.root_unwraps
        assert unwraps_at_start == 2  # one bank key each, at start-up
        today = clock.now().date()
        for skip, (bank, meta, suite) in enumerate(
            [
                ("bank-a", gw.a, Suite.AES256_GCM_HMAC_SHA256),
                ("bank-b", gw.b, SM),
            ]
        ):
            person = adult(population, today, skip=skip)
            issued = await issue(gw, person, meta, clock.now())
            assert issued.outcome == pb.ISSUE_OUTCOME_ISSUED
            card = await gw.gateway._store.get_card(issued.card.essc_id)
            assert card is not None
            assert card.bank_id == bank
            for sealed in (card.name_sealed, card.id_number_sealed, card.phone_sealed):
                assert sealed[1] == suite
                assert person.id_number.encode() not in sealed
            await change_to_strong_password(gw, person, meta)
            token = await auth_token(gw, person, meta, pb.BUSINESS_SCENARIO_QUERY_RECORDS)
            assert token
        assert keys.root_unwraps == unwraps_at_start  # no HSM round trip on the request path


@pytest.mark.hsm
async def test_a_wrong_pin_stops_the_start_with_exit_2_naming_the_setting(
    tmp_path: Path,
) -> None:
    settings = new_root()
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps({"banks": [{"bank_id": "bank-a", "token_sha256": token_digest("t")}]})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}
    wrong_pin = "0000" + settings.pin[4:]
    env.update(
        {
            "ESSC_PKCS11_MODULE": settings.module,
            "ESSC_PKCS11_TOKEN_LABEL": settings.token_label,
            "ESSC_PKCS11_KEY_LABEL": settings.key_label,
            "ESSC_PKCS11_PIN": wrong_pin,
            "ESSC_DATABASE": str(tmp_path / "gateway.db"),
            "ESSC_CONFIG": str(config_file),
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "essc_gateway.cli", "run", "--port", "0",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2, err.decode()
    assert "key management error: ESSC_PKCS11_PIN" in err.decode()
    assert wrong_pin not in (out + err).decode()
