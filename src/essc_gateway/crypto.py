"""Tokens handed to banks and digests of their bearer tokens (A13(1)).

- `TokenSealer`: opaque, authenticated, encrypted short-lived tokens (verification, auth),
  sealed under the bank's TOKENS key: another bank's key does not open them.
- `token_digest`: banks' and operators' bearer tokens are kept as digests only.

Personal data is sealed by `keys.keyring.BankKeyring` (per bank, per purpose, versioned).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from essc_gateway.keys.keyring import BankKeyring, DecryptionError

__all__ = ["DecryptionError", "TokenSealer", "token_digest"]


def _unpadded_b64(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).rstrip(b"=").decode()


class TokenSealer:
    """Encrypts a small JSON payload into a URL-safe token that only the bank's key opens."""

    def __init__(self, keyring_of: Callable[[str], BankKeyring]) -> None:
        self._keyring_of = keyring_of

    def seal(self, bank_id: str, kind: str, payload: Mapping[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        blob = self._keyring_of(bank_id).seal_token(body.encode(), kind)
        return f"{kind}.{_unpadded_b64(blob)}"

    def open(self, bank_id: str, kind: str, token: str) -> dict[str, Any]:
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
        try:
            keyring = self._keyring_of(bank_id)
        except KeyError:
            raise DecryptionError("no keys for this bank") from None
        payload = json.loads(keyring.open_token(blob, kind))
        if not isinstance(payload, dict):
            raise DecryptionError("token payload is not an object")
        return payload


def token_digest(token: str) -> str:
    """Bearer tokens are kept as SHA-256 digests: high-entropy secrets need no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()
