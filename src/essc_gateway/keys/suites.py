"""The two algorithm suites a bank chooses from (K3): an AEAD for sealing and a MAC for
lookup tokens.

- `AES256_GCM_HMAC_SHA256`: the international default.
- `SM4_GCM_HMAC_SM3`: the national commercial algorithms, SM4 (GB/T 32907) in GCM mode as
  RFC 8998 uses it, and HMAC over SM3 (GB/T 32905).

Every sealed value and token names its suite (and key version) in its header, so that a bank
moving from one suite to the other still opens what was sealed before.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16


class Suite(IntEnum):
    """Numbered as they are written in headers: never renumber."""

    AES256_GCM_HMAC_SHA256 = 1
    SM4_GCM_HMAC_SM3 = 2

    @property
    def key_bytes(self) -> int:
        """The AEAD key's length; MAC keys are 32 bytes in both suites."""
        return 32 if self is Suite.AES256_GCM_HMAC_SHA256 else 16

    @classmethod
    def named(cls, name: str) -> Suite:
        """From configuration: `aes` / `AES256_GCM_HMAC_SHA256`, `sm` / `SM4_GCM_HMAC_SM3`."""
        aliases = {"aes": cls.AES256_GCM_HMAC_SHA256, "sm": cls.SM4_GCM_HMAC_SM3}
        found = aliases.get(name.lower()) or cls.__members__.get(name.upper())
        if found is None:
            raise ValueError(f"unknown suite {name!r}: aes or sm")
        return found


MAC_KEY_BYTES = 32


class AuthenticationFailed(Exception):
    """A sealed value that this key does not open: tampered, moved, or another key's."""


class Aead(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes: ...


class _AesGcm:
    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        return self._aead.encrypt(nonce, data, associated_data)

    def decrypt(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, associated_data)
        except InvalidTag:
            raise AuthenticationFailed from None


class _Sm4Gcm:
    """SM4-GCM with a 12-byte nonce and a 16-byte tag appended, as RFC 8998 (TLS_SM4_GCM_SM3)
    uses it; `cryptography` has the cipher and the mode but no AEAD class for the pair."""

    __slots__ = ("_algorithm",)

    def __init__(self, key: bytes) -> None:
        self._algorithm = algorithms.SM4(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated_data)
        sealed = encryptor.update(data) + encryptor.finalize()
        return sealed + encryptor.tag

    def decrypt(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
        if len(sealed) < TAG_BYTES:
            raise AuthenticationFailed
        body, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
        decryptor = Cipher(self._algorithm, modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(associated_data)
        try:
            return decryptor.update(body) + decryptor.finalize()
        except InvalidTag:
            raise AuthenticationFailed from None


def aead(suite: Suite, key: bytes) -> Aead:
    if len(key) != suite.key_bytes:
        raise ValueError(f"{suite.name} takes a {suite.key_bytes}-byte key")
    return _AesGcm(key) if suite is Suite.AES256_GCM_HMAC_SHA256 else _Sm4Gcm(key)


@dataclass(frozen=True, slots=True)
class Mac:
    """A keyed MAC of the suite: lookup tokens, equal inputs equal tokens for this key only."""

    suite: Suite
    key: bytes = field(repr=False)  # never in a log line or an exception

    def __post_init__(self) -> None:
        if len(self.key) != MAC_KEY_BYTES:
            raise ValueError(f"MAC keys are {MAC_KEY_BYTES} bytes")

    def digest(self, message: bytes) -> bytes:
        if self.suite is Suite.AES256_GCM_HMAC_SHA256:
            # The standard library's HMAC is several times cheaper per call than a
            # `cryptography` HMAC object, and this is on the hot path.
            return hmac.new(self.key, message, hashlib.sha256).digest()
        mac = crypto_hmac.HMAC(self.key, hashes.SM3())
        mac.update(message)
        return mac.finalize()
