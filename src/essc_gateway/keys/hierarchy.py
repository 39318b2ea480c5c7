"""The key hierarchy below the root (K2): for each bank a bank key wrapped by the root, and
under it one key per purpose (DATA, LOOKUP, TOKENS), each sealed by the bank key.

Every key below the root is generated here, stored only wrapped, and unwrapped into memory at
start-up (one root round trip per bank key version): the request path never calls the root.
Replicas starting together each try to make a bank's first keys; the store takes one set and
the others load it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping

from essc_gateway.clock import Clock
from essc_gateway.keys.keyring import BankKeyring, KeySet, SealingKey
from essc_gateway.keys.model import (
    BANK_PURPOSES,
    KeyEvent,
    KeyEventKind,
    KeyPurpose,
    KeyState,
    KeyVersion,
    key_id,
)
from essc_gateway.keys.ports import KeyStore
from essc_gateway.keys.root import RootKeystore, UnwrapFailed
from essc_gateway.keys.suites import (
    MAC_KEY_BYTES,
    NONCE_BYTES,
    AuthenticationFailed,
    Mac,
    Suite,
    aead,
)

log = logging.getLogger(__name__)

_UNUSABLE = frozenset({KeyState.RETIRED, KeyState.DESTROYED})

MADE_BY_GATEWAY = "gateway"
"""`created_by` of a bank's first keys, made by the gateway at its first start."""


class KeyLoadError(Exception):
    """A stored key that does not open: the gateway must not start (it could seal nothing
    and open nothing of that bank). The message names the key, never material."""


def key_bytes(purpose: KeyPurpose, suite: Suite) -> int:
    return MAC_KEY_BYTES if purpose is KeyPurpose.LOOKUP else suite.key_bytes


def seal_child(bank_key: bytes, suite: Suite, child: bytes, child_id: str) -> bytes:
    """A purpose key sealed by its bank key, bound to its own id."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead(suite, bank_key).encrypt(nonce, child, child_id.encode())


def open_child(bank_key: bytes, suite: Suite, sealed: bytes, child_id: str) -> bytes:
    if len(sealed) <= NONCE_BYTES:  # a destroyed or damaged row: a load error, not a crash
        raise KeyLoadError(f"key {child_id} has no wrapped material")
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return aead(suite, bank_key).decrypt(nonce, body, child_id.encode())
    except AuthenticationFailed:
        raise KeyLoadError(f"key {child_id} does not open with its bank key") from None


class KeyHierarchy:
    def __init__(self, store: KeyStore, root: RootKeystore, clock: Clock) -> None:
        self._store = store
        self._root = root
        self._clock = clock
        self._keyrings: dict[str, BankKeyring] = {}
        self._bank_keys: dict[tuple[str, int], bytes] = {}
        """Unwrapped bank keys: a reload after a rotation of a purpose key needs no root."""
        self.root_unwraps = 0
        """Round trips to the root since start (the request path makes none)."""
        self.root_unwraps_by_bank: Counter[str] = Counter()
        """The same per bank, since the last usage report."""

    @property
    def root(self) -> RootKeystore:
        return self._root

    def bank(self, bank_id: str) -> BankKeyring:
        """The bank's keys in use. KeyError: a bank the gateway was not started with."""
        return self._keyrings[bank_id]

    def banks(self) -> list[str]:
        return sorted(self._keyrings)

    async def open_banks(self, suites: Mapping[str, Suite], *, make_missing: bool = True) -> None:
        """Makes the first keys of banks that have none (in the suite configured for each;
        with `make_missing`, else leaves those banks out), then unwraps every bank's keys.

        Raises:
            KeyLoadError: a stored key does not open.
            KeystoreError: the root keystore cannot be used.
        """
        versions = await self._store.key_versions()
        if not versions and await self._store.holds_cards():
            raise KeyLoadError(
                "this store holds cards sealed by the flat keys of version 0.1.0 "
                "(ESSC_DATA_KEY), which this version does not read: start from a new store"
            )
        existing = {v.bank_id for v in versions}
        for bank_id, suite in suites.items():
            if bank_id in existing or not make_missing:
                continue
            if not await self._generate_first(bank_id, suite):
                log.info("bank %s: its first keys were made by another replica", bank_id)
            existing.add(bank_id)
        await self.reload([b for b in suites if b in existing])

    async def reload(self, banks: Iterable[str] | None = None) -> None:
        """Unwraps the stored keys of `banks` (default: those held now), after a rotation
        too."""
        versions = await self._store.key_versions()
        keyrings = {}
        for bank_id in self.banks() if banks is None else banks:
            mine = [v for v in versions if v.bank_id == bank_id]
            keyrings[bank_id] = await self._keyring(bank_id, mine)
        self._keyrings = keyrings

    async def bank_key(self, version: KeyVersion) -> bytes:
        """A bank key unwrapped by the root (once; then held).

        Raises:
            KeyLoadError: it does not open with this root.
            KeystoreError: the root keystore cannot be used.
        """
        held = self._bank_keys.get((version.bank_id, version.version))
        if held is not None:
            return held
        try:
            key = await self._root.unwrap(version.wrapped, version.key_id)
        except UnwrapFailed as failure:  # another root, or a damaged row
            raise KeyLoadError(str(failure)) from None
        self.root_unwraps += 1
        self.root_unwraps_by_bank[version.bank_id] += 1
        self._bank_keys[(version.bank_id, version.version)] = key
        return key

    def hold_bank_key(self, bank_id: str, version: int, key: bytes) -> None:
        """A bank key this replica just made: no root round trip to read it back."""
        self._bank_keys[(bank_id, version)] = key

    async def _generate_first(self, bank_id: str, suite: Suite) -> bool:
        now = self._clock.now()
        bank_key = os.urandom(suite.key_bytes)
        bank_id_1 = key_id(bank_id, KeyPurpose.BANK, 1)
        keys = [
            KeyVersion(
                bank_id, KeyPurpose.BANK, 1, suite,
                await self._root.wrap(bank_key, bank_id_1),
                None, KeyState.ACTIVE, now, MADE_BY_GATEWAY,
            )
        ]  # fmt: skip
        for purpose in BANK_PURPOSES:
            child_id = key_id(bank_id, purpose, 1)
            child = os.urandom(key_bytes(purpose, suite))
            keys.append(
                KeyVersion(
                    bank_id, purpose, 1, suite,
                    seal_child(bank_key, suite, child, child_id),
                    1, KeyState.ACTIVE, now, MADE_BY_GATEWAY,
                )
            )  # fmt: skip
        events = [
            KeyEvent(
                KeyEventKind.GENERATED, k.key_id, bank_id, k.purpose, k.version, suite, now,
                MADE_BY_GATEWAY, f"wrapped by {self._root.description}"
                if k.purpose is KeyPurpose.BANK else f"sealed by {bank_id_1}",
            )
            for k in keys
        ]  # fmt: skip
        return await self._store.add_key_versions(keys, events)

    async def _keyring(self, bank_id: str, versions: Iterable[KeyVersion]) -> BankKeyring:
        versions = list(versions)
        bank_keys: dict[int, tuple[Suite, bytes]] = {}
        for v in versions:
            if v.purpose is KeyPurpose.BANK and v.state not in _UNUSABLE:
                bank_keys[v.version] = (v.suite, await self.bank_key(v))
        data, tokens = KeySet(), KeySet()
        lookups: dict[int, Mac] = {}
        lookup_current = 0
        for v in versions:
            if v.purpose is KeyPurpose.BANK or v.state in _UNUSABLE:
                continue
            if v.parent_version not in bank_keys:
                raise KeyLoadError(f"key {v.key_id}: its bank key is not held")
            suite, bank_key = bank_keys[v.parent_version]
            child = open_child(bank_key, suite, v.wrapped, v.key_id)
            usable = v.state is KeyState.ACTIVE
            if v.purpose is KeyPurpose.LOOKUP:
                lookups[v.version] = Mac(v.suite, child)
                if usable:
                    lookup_current = max(lookup_current, v.version)
                continue
            keyset = data if v.purpose is KeyPurpose.DATA else tokens
            keyset.by_version[v.version] = SealingKey(v.version, v.suite, aead(v.suite, child))
            if usable:
                keyset.current = max(keyset.current, v.version)
            else:
                keyset.refused |= {v.version}
        if not (data.current and tokens.current and lookup_current):
            raise KeyLoadError(f"bank {bank_id}: no active key for one of its purposes")
        return BankKeyring(bank_id, data, tokens, lookups, lookup_current)

    async def close(self) -> None:
        """Forgets the unwrapped keys and closes the root keystore."""
        self._keyrings = {}
        self._bank_keys = {}
        await self._root.close()
