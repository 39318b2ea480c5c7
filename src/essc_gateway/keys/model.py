"""The keys below the root, as the store keeps them: wrapped by their parent, never in clear."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from essc_gateway.keys.suites import Suite


class KeyPurpose(StrEnum):
    """A bank's keys (K2: level by level). BANK is the bank's key-encryption key, wrapped by
    the root; the others are wrapped by the bank key."""

    BANK = "BANK"
    DATA = "DATA"
    """Seals personal-data fields (and, below it, each holder's key)."""
    LOOKUP = "LOOKUP"
    """Keys the MAC of lookup tokens (finding a holder by ID number, name, phone)."""
    TOKENS = "TOKENS"
    """Seals the verification and auth tokens handed to the bank."""


BANK_PURPOSES = (KeyPurpose.DATA, KeyPurpose.LOOKUP, KeyPurpose.TOKENS)


class KeyState(StrEnum):
    ACTIVE = "ACTIVE"
    """Seals (the newest active version) and opens."""
    RETIRED = "RETIRED"
    """Nothing sealed under it remains; kept for the record, never used."""
    COMPROMISED = "COMPROMISED"
    """Declared in a key incident (K7): opens only to move data away; seals nothing."""


class KeyEventKind(StrEnum):
    GENERATED = "GENERATED"
    ROTATED = "ROTATED"
    REWRAPPED = "REWRAPPED"
    RETIRED = "RETIRED"
    COMPROMISED = "COMPROMISED"


@dataclass(frozen=True, slots=True)
class KeyVersion:
    bank_id: str
    purpose: KeyPurpose
    version: int
    suite: Suite
    wrapped: bytes
    """Wrapped by the root (BANK) or sealed by the bank key of `parent_version`."""
    parent_version: int | None
    state: KeyState
    created_at: datetime
    created_by: str
    """The operator who caused it, or `gateway` for a key made at first start."""

    @property
    def key_id(self) -> str:
        return key_id(self.bank_id, self.purpose, self.version)

    def __repr__(self) -> str:  # never the wrapped bytes
        return f"KeyVersion({self.key_id}, {self.suite.name}, {self.state.value})"


def key_id(bank_id: str, purpose: KeyPurpose, version: int) -> str:
    return f"{bank_id}/{purpose.value}/v{version}"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One fact of a key's life, for the evidence log (no key material)."""

    kind: KeyEventKind
    key_id: str
    bank_id: str
    purpose: KeyPurpose
    version: int
    suite: Suite
    at: datetime
    by: str
    detail: str = ""
