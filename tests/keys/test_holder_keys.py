"""Each holder's fields are sealed under a key of that holder (wrapped by the bank's DATA
key), stored with the holder's first card: without that one key nothing of the card opens,
not even with every bank key; a returning holder's next card uses the same key."""

from __future__ import annotations

import pytest

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.keyring import HOLDER_FORMAT, DecryptionError
from essc_gateway.service.vault import Vault
from essc_gateway.simplatform import Population, SimulatedPlatform
from essc_gateway.store.location import StoreLocation
from essc_gateway.testing import FakeClock
from tests.conftest import GatewayUnderTest, make_config, running_gateway
from tests.gateway.flows import adult, issue


async def test_a_card_is_sealed_under_its_holders_key_and_nothing_else_opens_it(
    gw: GatewayUnderTest, population: Population, clock: FakeClock
) -> None:
    person, other = adult(population, clock.now().date()), adult(population, clock.now().date(), 1)
    issued = await issue(gw, person, gw.a, clock.now(), idempotency_key="holder-key-1")
    await issue(gw, other, gw.a, clock.now())
    store, keys = gw.gateway._store, gw.gateway.keys
    assert store is not None
    assert keys is not None
    card = await store.get_card(issued.card.essc_id)
    assert card is not None
    stored = await store.holder_key("bank-a", card.holder_token)
    assert stored is not None
    assert stored.data_version == 1
    for sealed in (card.name_sealed, card.id_number_sealed, card.phone_sealed):
        assert sealed[0] == HOLDER_FORMAT
    # A gateway that lost nothing but its cache reads the card through the stored key.
    fresh = Vault(keys, HolderKeys(store, keys))
    assert await fresh.id_number(card) == person.id_number
    # The bank's DATA key alone opens nothing of it, nor does another holder's key.
    with pytest.raises(DecryptionError):
        keys.bank("bank-a").open(card.id_number_sealed, f"cards\x1f{card.essc_id}\x1fid_number")
    other_card = await store.current_card_for_holder(fresh.holder_token("bank-a", other.id_number))
    assert other_card is not None
    other_key = await HolderKeys(store, keys).existing("bank-a", other_card.holder_token)
    assert other_key is not None
    assert other_key.key_id != stored.key_id
    with pytest.raises(DecryptionError):
        keys.bank("bank-a").open_for(
            other_key, card.id_number_sealed, f"cards\x1f{card.essc_id}\x1fid_number"
        )
    # A replay reads the card back through the holder's key.
    again = await issue(gw, person, gw.a, clock.now(), idempotency_key="holder-key-1")
    assert again.outcome == pb.ISSUE_OUTCOME_REPLAYED
    assert again.card.physical_card_number_masked == issued.card.physical_card_number_masked


async def test_a_card_read_before_a_key_job_moved_it_still_opens(
    platform: SimulatedPlatform, population: Population, clock: FakeClock, database: StoreLocation
) -> None:
    """A request that read the card just before a job filed it under a new lookup token, or
    sealed it again under a fresh holder key, reads it again instead of failing."""
    config = make_config(database)
    async with running_gateway(platform, clock, config, background_jobs=False) as gw:
        store, keys = gw.gateway._store, gw.gateway.keys
        assert store is not None
        assert keys is not None
        person = adult(population, clock.now().date())
        issued = await issue(gw, person, gw.a, clock.now())
        mover = gw.gateway.key_management.mover
        for purpose, version in ((opb.KEY_PURPOSE_LOOKUP, 1), (opb.KEY_PURPOSE_DATA, 1)):
            stale = await store.get_card(issued.card.essc_id)
            assert stale is not None
            if purpose == opb.KEY_PURPOSE_LOOKUP:
                await gw.operator.RotateKey(
                    opb.RotateKeyRequest(bank_id="bank-a", purpose=purpose), metadata=gw.ops
                )
            else:
                await gw.operator.DeclareKeyCompromised(
                    opb.DeclareKeyCompromisedRequest(
                        bank_id="bank-a", purpose=purpose, version=version, reason="test"
                    ),
                    metadata=gw.ops,
                )
            await mover.work_once()
            moved = await store.get_card(issued.card.essc_id)
            assert moved is not None
            assert moved != stale  # filed or sealed anew
            reader = Vault(keys, HolderKeys(store, keys))
            assert await reader.id_number(stale) == person.id_number
