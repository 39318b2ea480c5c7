"""The root of the key hierarchy: a key that never leaves its keystore and only wraps and
unwraps the keys of the level below (K2).

Both keystores wrap with AES key wrap (RFC 3394, `CKM_AES_KEY_WRAP`), so a wrapped key looks
the same whichever made it. What is wrapped is the child key followed by a digest of its
identity: a wrapped key copied onto another key's row fails to unwrap instead of silently
becoming that key.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

ROOT_KEY_BYTES = 32
_BINDING_BYTES = 16


class KeystoreError(Exception):
    """The keystore cannot be used (absent, locked, wrong PIN, unreachable); the message names
    the setting, never a PIN or key."""


class UnwrapFailed(Exception):
    """A wrapped key that the root does not open, or that belongs to another key id."""


def bind(key: bytes, key_id: str) -> bytes:
    """The key with the digest of its id appended: what is wrapped."""
    return key + hashlib.sha256(key_id.encode()).digest()[:_BINDING_BYTES]


def unbind(material: bytes, key_id: str) -> bytes:
    key, binding = material[:-_BINDING_BYTES], material[-_BINDING_BYTES:]
    if len(material) <= _BINDING_BYTES or bind(key, key_id)[-_BINDING_BYTES:] != binding:
        raise UnwrapFailed(f"wrapped key {key_id} belongs to another key")
    return key


class RootKeystore(Protocol):
    """Wraps and unwraps the keys of the level below the root. Blocking calls run off the
    event loop; callers await them at start-up, on a cache miss and on rotation only."""

    @property
    def description(self) -> str:
        """Where the root is, for logs and key events (no secrets)."""
        ...

    async def wrap(self, key: bytes, key_id: str) -> bytes: ...

    async def unwrap(self, wrapped: bytes, key_id: str) -> bytes: ...

    async def probe(self) -> None:
        """Whether the keystore answers now (the health check's look). Raises KeystoreError."""
        ...

    async def close(self) -> None: ...


class FileRoot:
    """A root key in a local file (mode 0600), for development (`make run`) only: a bank's
    deployment points the gateway at its HSM (`Pkcs11Root`)."""

    def __init__(self, key: bytes, path: Path) -> None:
        self._key = key
        self._path = path

    @classmethod
    def open(cls, path: Path, *, create: bool) -> FileRoot:
        """Reads the root key file; with `create`, makes one (0600) when there is none.

        Raises:
            KeystoreError: the file is missing (and not to be made), readable by others than
                its owner, or not a key.
        """
        if not path.exists():
            if not create:
                raise KeystoreError(f"ESSC_ROOT_KEY_FILE: {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(os.urandom(ROOT_KEY_BYTES))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeystoreError(
                f"ESSC_ROOT_KEY_FILE: {path} has mode {mode:04o}; it must be readable by its "
                "owner only (chmod 600)"
            )
        key = path.read_bytes()
        if len(key) != ROOT_KEY_BYTES:
            raise KeystoreError(f"ESSC_ROOT_KEY_FILE: {path} is not a {ROOT_KEY_BYTES}-byte key")
        return cls(key, path)

    @property
    def description(self) -> str:
        return f"file:{self._path}"

    async def wrap(self, key: bytes, key_id: str) -> bytes:
        return aes_key_wrap(self._key, bind(key, key_id))

    async def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        try:
            return unbind(aes_key_unwrap(self._key, wrapped), key_id)
        except InvalidUnwrap:
            raise UnwrapFailed(f"wrapped key {key_id} does not open with the root") from None

    async def probe(self) -> None:
        try:
            same = self._path.read_bytes() == self._key
        except OSError:
            same = False
        if not same:
            raise KeystoreError(f"ESSC_ROOT_KEY_FILE: {self._path} is gone or changed")

    async def close(self) -> None:
        return None
