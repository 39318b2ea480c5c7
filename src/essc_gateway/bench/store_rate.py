"""The store alone: issuance records committed per second by concurrent writers.

Each record is what a successful Issue writes: the attempt claimed under its idempotency
key, durably (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`: fsync before
the answer), then completed with the card, committed lazily (two writes, as
`IssuanceService` does; see `Store.complete_issue`). A record counts once `complete_issue`
has returned, that is once its transaction is committed. The targets' names still say
"committed durably": the record's claim is, and reports compare by name.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from essc_gateway.keys.model import WrappedHolderKey
from essc_gateway.store.base import CardRecord
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.opening import open_store

_SEALED = os.urandom(60)  # stands in for an AES-GCM ciphertext of the same size


@dataclass(frozen=True)
class StoreRate:
    records: int
    seconds: float
    writers: int
    synchronous: str

    @property
    def records_per_second(self) -> float:
        return round(self.records / self.seconds, 1) if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "writers": self.writers,
            "synchronous": self.synchronous,
            "records_per_second": self.records_per_second,
        }


def _card(essc_id: str, holder_token: str, now: datetime) -> CardRecord:
    return CardRecord(
        essc_id=essc_id,
        bank_id="bench-bank",
        holder_token=holder_token,
        name_sealed=_SEALED,
        id_number_sealed=_SEALED,
        phone_sealed=_SEALED,
        card_number_sealed=_SEALED,
        status="ACTIVE",
        issued_at=now,
        consent_version="2024-03-20",
        consent_accepted_at=now,
        consent_channel="MOBILE_APP",
    )


_LEASE = timedelta(seconds=30)
_SEALED_DRAFT = bytes(400)
_HOLDER_KEY = bytes(61)  # suite byte + header + nonce + a 32-byte key + tag


async def measure_store_rate(location: StoreLocation, seconds: float, writers: int) -> StoreRate:
    """`writers` concurrent tasks issue records for `seconds` into a fresh store: a SQLite
    file (a directory: the file goes in it) or a PostgreSQL database."""
    if isinstance(location, Path):
        location = location / "store-bench.db"
    store = await open_store(location, "FULL")
    done = 0
    try:

        async def writer(deadline: float) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                key, now = uuid.uuid4().hex, datetime.now(UTC)
                # As Issue claims: a lease and the sealed request (size of a real one).
                claim = await store.claim_issue(
                    "bench-bank", key, "fingerprint", now, now + _LEASE, _SEALED_DRAFT
                )
                # Each a new holder: the holder's key goes in with the card.
                holder_key = WrappedHolderKey("bench-bank", key, "hk_" + key, 1, _HOLDER_KEY, now)
                await store.complete_issue(
                    "bench-bank",
                    key,
                    "ISSUED",
                    key,
                    _card(key, key, now),
                    now,
                    claim.token,
                    holder_key,
                    lazy=True,  # as an Issue's own ISSUED completion is
                )
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(writer(start + seconds) for _ in range(writers)))
        elapsed = time.monotonic() - start
    finally:
        await store.close()
    durability = (
        "FULL, completions lazy"
        if isinstance(location, Path)
        else "synchronous_commit=on, completions off"
    )
    return StoreRate(done, elapsed, writers, durability)
