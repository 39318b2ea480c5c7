"""Protection of personal data at rest and of the tokens the gateway hands out (A13(1)).

- `FieldCipher`: AES-256-GCM per field, with table, row and field bound as associated data,
  so a ciphertext copied into another row or column fails to decrypt.
- `LookupHasher`: keyed HMAC-SHA256 tokens to find rows by ID number or phone; an unkeyed
  hash of an ID number (about 1.3e11 possibilities) is brute-forced in minutes.
- `TokenSealer`: opaque, authenticated, encrypted short-lived tokens (verification, auth).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
KEY_BYTES = 32


class DecryptionError(Exception):
    """A ciphertext or token failed authentication (tampered, moved, or wrong key)."""


@dataclass(frozen=True)
class KeyRing:
    """Versioned keys; the newest one seals, any known one opens (rotation without rewrite)."""

    keys: Mapping[int, bytes]
    current: int

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("current key version is not in the key ring")
        for version, key in self.keys.items():
            if not 0 <= version <= 255:
                raise ValueError("key versions are 0-255")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key version {version} must be {KEY_BYTES} bytes")

    @classmethod
    def single(cls, key: bytes) -> KeyRing:
        return cls(keys={1: key}, current=1)


class FieldCipher:
    """AES-GCM for one personal-data field of one row."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._aeads = {version: AESGCM(key) for version, key in ring.keys.items()}

    @staticmethod
    def _aad(table: str, row_id: str, field: str) -> bytes:
        return f"{table}\x1f{row_id}\x1f{field}".encode()

    def seal(self, plaintext: str, *, table: str, row_id: str, field: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        aead = self._aeads[self._ring.current]
        sealed = aead.encrypt(nonce, plaintext.encode(), self._aad(table, row_id, field))
        return bytes([self._ring.current]) + nonce + sealed

    def open(self, blob: bytes, *, table: str, row_id: str, field: str) -> str:
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[0] not in self._aeads:
            raise DecryptionError("ciphertext is malformed or sealed with an unknown key")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        try:
            plain = self._aeads[blob[0]].decrypt(
                nonce, blob[1 + _NONCE_BYTES :], self._aad(table, row_id, field)
            )
        except InvalidTag:
            raise DecryptionError("ciphertext failed authentication") from None
        return plain.decode()


class LookupHasher:
    """Keyed lookup tokens: equal inputs give equal tokens only for the key's holder."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"lookup key must be {KEY_BYTES} bytes")
        self._key = key

    def token(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x1f{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def _unpadded_b64(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).rstrip(b"=").decode()


class TokenSealer:
    """Encrypts a small JSON payload into a URL-safe token that only this key opens."""

    def __init__(self, ring: KeyRing) -> None:
        self._cipher = FieldCipher(ring)

    def seal(self, kind: str, payload: Mapping[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        blob = self._cipher.seal(body, table="token", row_id=kind, field="payload")
        return f"{kind}.{_unpadded_b64(blob)}"

    def open(self, kind: str, token: str) -> dict[str, Any]:
        prefix, _, encoded = token.partition(".")
        if prefix != kind or not encoded:
            raise DecryptionError("token is not of the expected kind")
        try:
            blob = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            raise DecryptionError("token is not valid base64") from None
        # The decoder skips stray characters and ignores spare bits: one token, one spelling.
        if _unpadded_b64(blob) != encoded:
            raise DecryptionError("token is not in its canonical spelling")
        payload = json.loads(self._cipher.open(blob, table="token", row_id=kind, field="payload"))
        if not isinstance(payload, dict):
            raise DecryptionError("token payload is not an object")
        return payload


def token_digest(token: str) -> str:
    """Bearer tokens are kept as SHA-256 digests: high-entropy secrets need no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()
