"""One bank's keys in use, unwrapped in memory: sealing personal data, lookup tokens, and the
tokens handed to the bank. Built by `KeyHierarchy`; nothing here calls the root keystore.

A sealed value starts with a header naming the format, the suite and the key version:
    0xE5 | suite (1 byte) | version (2 bytes, big-endian) | nonce (12) | ciphertext and tag
and the header, the bank and the value's place (table, row, field) are its associated data:
a value copied to another place, another bank, or given another header does not open.
A lookup token is `<version>.<hex MAC>`, so a lookup finds what any live version made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from essc_gateway.keys.suites import NONCE_BYTES, TAG_BYTES, Aead, AuthenticationFailed, Mac, Suite

FORMAT = 0xE5
HOLDER_FORMAT = 0xE6
"""A value sealed under a holder's key: the header names the suite; the key is the holder's
(found by the row's bank and holder token), its id bound into the associated data."""
_HEADER_BYTES = 4


def lookup_version_of(token: str) -> int | None:
    """The LOOKUP key version a lookup token was made under; None if it is not a token."""
    version, dot, _ = token.partition(".")
    return int(version) if dot and version.isdigit() else None


class DecryptionError(Exception):
    """A sealed value or token that does not open: tampered, moved, another bank's, or
    sealed under a key this gateway does not hold (never says more)."""


@dataclass(frozen=True, slots=True)
class SealingKey:
    version: int
    suite: Suite
    aead: Aead


@dataclass(slots=True)
class KeySet:
    """The versions of one purpose: the newest active one seals, any held one opens."""

    by_version: dict[int, SealingKey] = field(default_factory=dict)
    current: int = 0
    refused: frozenset[int] = frozenset()
    """Versions declared compromised (K7): they open data only to move it, tokens never."""


def _header(suite: Suite, version: int) -> bytes:
    return bytes([FORMAT, int(suite)]) + version.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class HolderKey:
    """A holder's key, unwrapped (held in a bounded cache while in use)."""

    key_id: str
    suite: Suite
    aead: Aead

    def __repr__(self) -> str:
        return f"HolderKey({self.key_id})"


class BankKeyring:
    def __init__(
        self,
        bank_id: str,
        data: KeySet,
        tokens: KeySet,
        lookups: Mapping[int, Mac],
        lookup_current: int,
    ) -> None:
        self.bank_id = bank_id
        self._data = data
        self._tokens = tokens
        self._lookups = dict(lookups)
        self._lookup_current = lookup_current
        self._prefix = bank_id.encode() + b"\x1f"

    # Personal data.
    def seal(self, plaintext: bytes, place: str) -> bytes:
        return self._seal(self._data, plaintext, place)

    def open(self, sealed: bytes, place: str) -> bytes:
        return self._open(self._data, sealed, place, allow_refused=True)

    def data_version_of(self, sealed: bytes) -> int:
        """The DATA key version a value was sealed under (re-encryption picks by it)."""
        if len(sealed) < _HEADER_BYTES or sealed[0] != FORMAT:
            raise DecryptionError("not a sealed value")
        return int.from_bytes(sealed[2:4], "big")

    @property
    def lookup_version(self) -> int:
        return self._lookup_current

    def data_version_compromised(self, version: int) -> bool:
        """Whether DATA `version` was declared compromised (K7)."""
        return version in self._data.refused

    @property
    def data_version(self) -> int:
        return self._data.current

    # A holder's own fields, under the holder's key.
    def seal_for(self, holder: HolderKey, plaintext: bytes, place: str) -> bytes:
        header = bytes([HOLDER_FORMAT, int(holder.suite), 0, 0])
        nonce = os.urandom(NONCE_BYTES)
        aad = self._aad(header, holder.key_id + "\x1f" + place)
        return header + nonce + holder.aead.encrypt(nonce, plaintext, aad)

    def open_for(self, holder: HolderKey, sealed: bytes, place: str) -> bytes:
        if (
            len(sealed) < _HEADER_BYTES + NONCE_BYTES + TAG_BYTES
            or sealed[0] != HOLDER_FORMAT
            or sealed[1] != holder.suite
        ):
            raise DecryptionError("not a value sealed under this holder's key")
        header = sealed[:_HEADER_BYTES]
        nonce = sealed[_HEADER_BYTES : _HEADER_BYTES + NONCE_BYTES]
        try:
            return holder.aead.decrypt(
                nonce,
                sealed[_HEADER_BYTES + NONCE_BYTES :],
                self._aad(header, holder.key_id + "\x1f" + place),
            )
        except AuthenticationFailed:
            raise DecryptionError("sealed value failed authentication") from None

    @staticmethod
    def suite_of(value: int) -> Suite:
        try:
            return Suite(value)
        except ValueError:
            raise DecryptionError("an unknown suite") from None

    @property
    def data_suite(self) -> Suite:
        return self._data.by_version[self._data.current].suite

    # Tokens handed to the bank.
    def seal_token(self, plaintext: bytes, kind: str) -> bytes:
        return self._seal(self._tokens, plaintext, "token\x1f" + kind)

    def open_token(self, sealed: bytes, kind: str) -> bytes:
        return self._open(self._tokens, sealed, "token\x1f" + kind, allow_refused=False)

    # Lookup tokens.
    def lookup_token(self, message: str) -> str:
        """The token of the current LOOKUP version: what a new row is stored under."""
        mac = self._lookups[self._lookup_current]
        return f"{self._lookup_current}.{mac.digest(message.encode()).hex()}"

    def lookup_tokens(self, message: str) -> list[str]:
        """The tokens under every held LOOKUP version, newest first: a lookup during a move
        from one version to the next finds rows under either."""
        return [
            f"{version}.{self._lookups[version].digest(message.encode()).hex()}"
            for version in sorted(self._lookups, reverse=True)
        ]

    def _seal(self, keys: KeySet, plaintext: bytes, place: str) -> bytes:
        key = keys.by_version[keys.current]
        if keys.current in keys.refused:  # never: a compromised version is not current
            raise DecryptionError("the current key is compromised")
        header = _header(key.suite, key.version)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + key.aead.encrypt(nonce, plaintext, self._aad(header, place))

    def _open(self, keys: KeySet, sealed: bytes, place: str, *, allow_refused: bool) -> bytes:
        if len(sealed) < _HEADER_BYTES + NONCE_BYTES + TAG_BYTES or sealed[0] != FORMAT:
            raise DecryptionError("not a sealed value")
        header = sealed[:_HEADER_BYTES]
        version = int.from_bytes(header[2:4], "big")
        key = keys.by_version.get(version)
        if key is None or key.suite != sealed[1] or (version in keys.refused and not allow_refused):
            raise DecryptionError("sealed under a key this gateway does not use")
        nonce = sealed[_HEADER_BYTES : _HEADER_BYTES + NONCE_BYTES]
        try:
            return key.aead.decrypt(
                nonce, sealed[_HEADER_BYTES + NONCE_BYTES :], self._aad(header, place)
            )
        except AuthenticationFailed:
            raise DecryptionError("sealed value failed authentication") from None

    def _aad(self, header: bytes, place: str) -> bytes:
        return header + self._prefix + place.encode()
