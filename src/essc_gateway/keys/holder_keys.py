"""Each holder's key at a bank (A14: erasure destroys this one key): generated with the
holder's first card, stored sealed by the bank's DATA key in the card's own transaction, and
held unwrapped in a bounded cache so that a returning holder costs no store read."""

from __future__ import annotations

import secrets
from collections import Counter, OrderedDict
from datetime import datetime

from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.keyring import DecryptionError, HolderKey
from essc_gateway.keys.model import WrappedHolderKey
from essc_gateway.keys.ports import KeyStore
from essc_gateway.keys.suites import Suite, aead
from essc_gateway.store.base import CardRecord

CACHE_SIZE = 10_000
"""Unwrapped holder keys held at once (32 bytes and an AEAD object each)."""


def _place(key_id: str) -> str:
    return "holder_keys\x1f" + key_id


class HolderKeys:
    def __init__(self, store: KeyStore, keys: KeyHierarchy, capacity: int = CACHE_SIZE) -> None:
        self._store = store
        self._keys = keys
        self._capacity = capacity
        self._cache: OrderedDict[tuple[str, str], HolderKey] = OrderedDict()
        self.unwraps: Counter[str] = Counter()
        """Holder keys unwrapped (read from the store) per bank since the last usage report."""

    def cached(self, bank_id: str, holder_token: str) -> HolderKey | None:
        """The holder's key if held in memory (no store read)."""
        cached = self._cache.get((bank_id, holder_token))
        if cached is not None:
            self._cache.move_to_end((bank_id, holder_token))
        return cached

    async def existing(self, bank_id: str, holder_token: str) -> HolderKey | None:
        """The holder's key at the bank, or None if the holder has none (no card yet)."""
        cached = self._cache.get((bank_id, holder_token))
        if cached is not None:
            self._cache.move_to_end((bank_id, holder_token))
            return cached
        stored = await self._store.holder_key(bank_id, holder_token)
        if stored is None:
            return None
        key = self._unwrap(stored)
        self.remember(bank_id, holder_token, key)
        return key

    def new(
        self, bank_id: str, holder_token: str, now: datetime
    ) -> tuple[HolderKey, WrappedHolderKey]:
        """A fresh key for a holder who has none, and its sealed form for the store (written
        with the holder's card; `remember` it once that commit succeeded)."""
        suite = self._keys.bank(bank_id).data_suite
        raw = secrets.token_bytes(suite.key_bytes)
        key_id = "hk_" + secrets.token_hex(12)
        return HolderKey(key_id, suite, aead(suite, raw)), self.wrap(
            bank_id, holder_token, key_id, suite, raw, now
        )

    def wrap(
        self, bank_id: str, holder_token: str, key_id: str, suite: Suite, raw: bytes, now: datetime
    ) -> WrappedHolderKey:
        """A holder key sealed by the bank's current DATA key."""
        keyring = self._keys.bank(bank_id)
        return WrappedHolderKey(
            bank_id=bank_id,
            holder_token=holder_token,
            key_id=key_id,
            data_version=keyring.data_version,
            wrapped=bytes([int(suite)]) + keyring.seal(raw, _place(key_id)),
            created_at=now,
        )

    def unwrap_raw(self, stored: WrappedHolderKey) -> tuple[Suite, bytes]:
        """The holder key's suite and bytes (the move to a new DATA version re-wraps them)."""
        keyring = self._keys.bank(stored.bank_id)
        if not stored.wrapped:
            raise DecryptionError("an empty holder key")
        suite = keyring.suite_of(stored.wrapped[0])
        return suite, keyring.open(stored.wrapped[1:], _place(stored.key_id))

    def remember(self, bank_id: str, holder_token: str, key: HolderKey) -> None:
        self._cache[(bank_id, holder_token)] = key
        self._cache.move_to_end((bank_id, holder_token))
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def forget(self, bank_id: str, holder_token: str) -> None:
        self._cache.pop((bank_id, holder_token), None)

    async def card(self, essc_id: str) -> CardRecord | None:
        """The card as stored now (a key job may have moved it since it was read)."""
        return await self._store.get_card(essc_id)

    def forget_all(self) -> None:
        """After a change of the hierarchy (a key incident replaces holder keys)."""
        self._cache.clear()

    def _unwrap(self, stored: WrappedHolderKey) -> HolderKey:
        suite, raw = self.unwrap_raw(stored)
        self.unwraps[stored.bank_id] += 1
        return HolderKey(stored.key_id, suite, aead(suite, raw))
