"""The evidence signing key: an Ed25519 private key in a PEM file that only the gateway's
user may read. Every replica of a cluster is given the same file; the development run makes
one on first start. The public verifier key is what a bank hands to its lawyer or auditor."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from essc_gateway.evidence.signed_note import NoteSigner


class SigningKeyError(ValueError):
    """The key file is missing, readable by others, or not an Ed25519 key (never its value)."""


def _create(path: Path) -> None:
    """Writes a new key whole, then links it into place: workers starting at once (or a
    crash midway) never leave or read a half-written key; the first link wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process's key is the one
    finally:
        draft.unlink(missing_ok=True)


def load_signer(path: Path, origin: str, create: bool = False) -> NoteSigner:
    """The checkpoint signer of the key at `path`, named `origin`. With `create`, a missing
    file is made (mode 0600). A file that group or others may read is refused."""
    if create and not path.exists():
        _create(path)
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except OSError as error:
        raise SigningKeyError(f"evidence key {path}: cannot read: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"evidence key {path}: mode {stat.S_IMODE(mode):04o} lets others read it; chmod 600 it"
        )
    try:
        return NoteSigner.from_private_pem(origin, pem)
    except (ValueError, TypeError):
        raise SigningKeyError(
            f"evidence key {path}: not an unencrypted Ed25519 private key in PEM"
        ) from None
