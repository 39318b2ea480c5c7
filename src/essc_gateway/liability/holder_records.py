"""A holder's failed requests (a complaint, A15): filed under the holder's lookup token of
the bank they went through, under whichever version of its lookup key was current."""

from __future__ import annotations

from datetime import datetime

from essc_gateway.liability.model import LiabilityRecord
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.service.vault import Vault


async def liability_records_of(
    store: LedgerStore,
    vault: Vault,
    since: datetime,
    until: datetime,
    bank_id: str | None,
    holder_id: str | None,
) -> list[LiabilityRecord]:
    """A bank's (or every bank's) failed requests in [since, until), of one holder if given."""
    if holder_id is None:
        return await store.liability_records(since, until, bank_id, None)
    found: list[LiabilityRecord] = []
    for bank, token in vault.holder_tokens(holder_id, bank_id):
        found += await store.liability_records(since, until, bank, token)
    return sorted(found, key=lambda record: record.seq)
