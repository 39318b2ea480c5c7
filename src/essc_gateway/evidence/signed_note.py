"""Signed notes (c2sp.org/signed-note) with Ed25519, and the checkpoint they carry
(c2sp.org/tlog-checkpoint): what the log publishes, and what anyone checks with our key.

    <text, ending in a newline>
    <blank line>
    — <key name> base64(key ID || Ed25519 signature over the text)

The same bytes as golang.org/x/mod/sumdb/note, so that its tools and witnesses read ours.
A note from outside is hostile input: every failure is a `NoteError` naming what failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ED25519 = 0x01
"""The signature type byte of Ed25519 in key IDs and verifier keys."""

MAX_SIGNATURES = 100
"""Signature lines a note may carry (the spec asks at least 16; Go's reader allows 100)."""

_SIGNATURE_PREFIX = "— ".encode()  # em dash U+2014, space
_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f]")  # every C0 control but the newline
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # ASCII decimal, no leading zero
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, checkpoint or verifier key is malformed or fails verification."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Canonical standard base64, or None. Canonical, because a decoder ignores the unused
    low bits of the last character: else one signature line would have several spellings.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    return data if _b64(data) == text else None


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _valid_name(name: str) -> bool:
    # The spec: non-empty, no Unicode space, no "+". Control characters are refused in the
    # whole note anyway; refusing them here makes a bad name fail where it is given.
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() or c < " " for c in name)
        and _utf8(name)
    )


def _key_id(name: str, typed_key: bytes) -> bytes:
    # SHA-256(name || "\n" || signature type || public key)[:4]; typed_key starts with the type.
    return hashlib.sha256(name.encode() + b"\n" + typed_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head as c2sp.org/tlog-checkpoint writes it: origin, size, root, extensions."""

    origin: str
    """The log's identity, e.g. "example.com/log42"; the signing key's name should match."""
    size: int
    """Leaves in the tree."""
    root: bytes
    """The Merkle tree hash at `size`."""
    extensions: tuple[str, ...] = ()
    """Opaque extra lines, each non-empty (the spec advises against them)."""

    def __post_init__(self) -> None:
        if not self.origin:
            raise NoteError("a checkpoint's origin must not be empty")
        if not 0 <= self.size < 2**64:
            raise NoteError("a checkpoint's size must be a 64-bit unsigned integer")
        if not self.root:
            raise NoteError("a checkpoint's root hash must not be empty")
        for line in (self.origin, *self.extensions):
            if not line or any(c < " " for c in line) or not _utf8(line):
                raise NoteError("a checkpoint line must be non-empty UTF-8 without controls")

    def body(self) -> bytes:
        """The note text: one line each for origin, size, base64 root, then extensions."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """The checkpoint a note's text holds.

        Raises:
            NoteError: `body` is not a checkpoint (fewer than three lines, a size with a
                sign, spaces or a leading zero, a root that is not canonical base64...).
        """
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise NoteError("checkpoint is not valid UTF-8") from None
        if not text.endswith("\n"):
            raise NoteError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs an origin, a size and a root hash line")
        origin, size, root_b64, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise NoteError("checkpoint size must be a decimal number without leading zeros")
        root = _unb64(root_b64)
        if root is None:
            raise NoteError("checkpoint root hash must be canonical base64")
        return cls(origin, int(size), root, tuple(extensions))


class NoteSigner:
    """Signs note texts with one Ed25519 key under one key name."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        if not _valid_name(name):
            raise NoteError("a key name must be non-empty, without spaces, '+' or controls")
        self.name = name
        self._key = key
        self._public = key.public_key().public_bytes_raw()
        self.key_id = _key_id(name, bytes([ED25519]) + self._public)
        """4 bytes: SHA-256(name || "\n" || 0x01 || public key)[:4]."""

    @classmethod
    def from_private_pem(cls, name: str, pem: bytes, password: bytes | None = None) -> NoteSigner:
        """The signer of an Ed25519 private key in PEM (PKCS #8).

        Raises:
            ValueError: not a PEM private key, or not an Ed25519 one.
            TypeError: a password is given for an unencrypted key, or none for an encrypted one.
        """
        key = load_pem_private_key(pem, password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("a note signing key must be an Ed25519 private key")
        return cls(name, key)

    def sign(self, text: bytes) -> bytes:
        """The signed note: `text`, a blank line, and this key's signature line.

        Raises:
            NoteError: `text` could not be read back as a note (no final newline, not
                UTF-8, or a control character other than newline).
        """
        _check_text(text)
        signature = base64.b64encode(self.key_id + self._key.sign(text))
        return b"".join(
            (text, b"\n", _SIGNATURE_PREFIX, self.name.encode(), b" ", signature, b"\n")
        )

    def verifier_key(self) -> str:
        """The public verifier key: "<name>+<hex key ID>+<base64(0x01 || public key)>"."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ED25519]) + self._public)}"

    def verifier(self) -> NoteVerifier:
        """The verifier of this signer's notes."""
        return NoteVerifier(self.name, self._key.public_key())


def _check_text(text: bytes) -> None:
    if not text.endswith(b"\n"):
        raise NoteError("a note text must end with a newline")
    try:
        text.decode()
    except UnicodeDecodeError:
        raise NoteError("a note text must be valid UTF-8") from None
    if _CONTROL.search(text):
        raise NoteError("a note text must not hold control characters but newlines")


class NoteVerifier:
    """Opens the notes signed by one Ed25519 key under one key name."""

    def __init__(self, name: str, key: Ed25519PublicKey) -> None:
        if not _valid_name(name):
            raise NoteError("a key name must be non-empty, without spaces, '+' or controls")
        self.name = name
        self._key = key
        self.key_id = _key_id(name, bytes([ED25519]) + key.public_bytes_raw())
        self._label = f"{name}+{self.key_id.hex()}"

    @classmethod
    def from_verifier_key(cls, vkey: str) -> NoteVerifier:
        """The verifier of a verifier key "<name>+<hex key ID>+<base64(0x01 || key)>".

        Raises:
            NoteError: malformed, an unknown signature type, or a key ID that does not
                match the name and key.
        """
        parts = vkey.split("+", 2)  # base64 may hold "+", a name may not
        if len(parts) != 3:
            raise NoteError("malformed verifier key: not <name>+<key ID>+<key>")
        name, key_id, typed_b64 = parts
        typed_key = _unb64(typed_b64)
        if not _valid_name(name) or not _HEX_KEY_ID.fullmatch(key_id):
            raise NoteError("malformed verifier key: bad key name or key ID")
        if not typed_key:
            raise NoteError("malformed verifier key: the key is not canonical base64")
        if _key_id(name, typed_key) != bytes.fromhex(key_id):
            raise NoteError("verifier key ID does not match its name and key")
        if typed_key[0] != ED25519:
            raise NoteError(f"verifier key of unknown signature type 0x{typed_key[0]:02x}")
        if len(typed_key) != 1 + 32:
            raise NoteError("malformed verifier key: an Ed25519 key is 32 bytes")
        return cls(name, Ed25519PublicKey.from_public_bytes(typed_key[1:]))

    def __repr__(self) -> str:
        return f"NoteVerifier({self._label})"

    def open(self, note: bytes) -> bytes:
        """The text of `note`, once its signature by this key is verified.

        Signatures by other keys (another name, or this name with another key ID) are
        ignored, as the spec requires; one bad signature by this key rejects the note.

        Raises:
            NoteError: the note is malformed, not signed by this key, or a signature by this
                key does not verify; the message says which.
        """
        try:
            note.decode()
        except UnicodeDecodeError:
            raise NoteError("malformed note: not valid UTF-8") from None
        if _CONTROL.search(note):
            raise NoteError("malformed note: a control character other than newline")
        split = note.rfind(b"\n\n")
        if split < 0:
            raise NoteError("malformed note: no blank line before the signatures")
        text, block = note[: split + 1], note[split + 2 :]
        if not block:
            raise NoteError("malformed note: no signature line")
        if not block.endswith(b"\n"):
            raise NoteError("malformed note: the last signature line has no final newline")
        lines = block[:-1].split(b"\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
        verified = False
        other_ids: set[str] = set()
        for number, line in enumerate(lines, 1):
            name, key_id, signature = _signature_line(line, number)
            if name != self.name:
                continue
            if key_id != self.key_id:
                other_ids.add(key_id.hex())
                continue
            try:
                self._key.verify(signature, text)
            except InvalidSignature:
                raise NoteError(f"bad signature by key {self._label}") from None
            verified = True
        if verified:
            return text
        if other_ids:
            raise NoteError(
                f"wrong key ID: signed as {self.name} with key ID {', '.join(sorted(other_ids))}"
                f", not {self.key_id.hex()}"
            )
        raise NoteError(f"no signature by key {self._label} ({len(lines)} by other keys)")

    def open_checkpoint(self, note: bytes, origin: str | None = None) -> Checkpoint:
        """The checkpoint of `note`, verified (`open`) and parsed; its origin must be `origin`
        when one is given.

        Raises:
            NoteError: as `open`, or the text is not a checkpoint, or of another origin.
        """
        checkpoint = Checkpoint.parse(self.open(note))
        if origin is not None and checkpoint.origin != origin:
            raise NoteError(f"checkpoint of another origin than {origin!r}")
        return checkpoint


def _signature_line(line: bytes, number: int) -> tuple[str, bytes, bytes]:
    """(key name, key ID, signature) of one signature line, or NoteError."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError(f"malformed note: signature line {number} does not start with '— '")
    # The whole note was checked to be UTF-8, and the prefix is whole characters.
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].decode().partition(" ")
    raw = _unb64(encoded)
    if not space or not _valid_name(name) or raw is None or len(raw) < 5:
        raise NoteError(f"malformed note: signature line {number} is not '— <name> <base64>'")
    return name, raw[:4], raw[4:]
