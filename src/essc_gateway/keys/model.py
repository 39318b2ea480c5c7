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
    DESTROYED = "DESTROYED"
    """Its wrapped material is deleted (K5, two operators): it opens nothing ever again."""


class KeyEventKind(StrEnum):
    GENERATED = "GENERATED"
    ROTATED = "ROTATED"
    REWRAPPED = "REWRAPPED"
    RETIRED = "RETIRED"
    COMPROMISED = "COMPROMISED"
    ACTION_REQUESTED = "ACTION_REQUESTED"
    USED = "USED"
    """How many times a bank's keys were unwrapped in an interval (K5: usage recorded)."""
    EXPORTED = "EXPORTED"
    DESTROYED = "DESTROYED"


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


@dataclass(frozen=True, slots=True)
class WrappedHolderKey:
    """One holder's key at one bank, sealed by the bank's DATA key (of `data_version`): the
    holder's personal fields are sealed under it, so that destroying this one row makes every
    copy of them unreadable (the basis of erasure)."""

    bank_id: str
    holder_token: str
    key_id: str
    """Random; bound into what the key seals (the holder token changes with the lookup key)."""
    data_version: int
    wrapped: bytes
    created_at: datetime

    def __repr__(self) -> str:
        return f"WrappedHolderKey({self.bank_id}, {self.key_id}, DATA/v{self.data_version})"


@dataclass(frozen=True, slots=True)
class Rewrap:
    """A key version sealed again, by another version of its parent."""

    bank_id: str
    purpose: KeyPurpose
    version: int
    wrapped: bytes
    parent_version: int


@dataclass(frozen=True, slots=True)
class StateChange:
    bank_id: str
    purpose: KeyPurpose
    version: int
    state: KeyState


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One change of the hierarchy, written in one transaction with its key events, and
    told to every replica (which reload their keys)."""

    new: tuple[KeyVersion, ...] = ()
    rewraps: tuple[Rewrap, ...] = ()
    states: tuple[StateChange, ...] = ()
    events: tuple[KeyEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyJob:
    """Moving a bank's holder keys off older DATA versions, once across replicas: whoever
    holds the lease works; progress is kept with each batch (resumable after a kill)."""

    job_id: str
    bank_id: str
    target_version: int
    rekey: bool
    """A compromised version (K7): every holder key under it is replaced, and the holder's
    fields sealed again under the new one; otherwise holder keys are only re-wrapped."""
    done: int
    total: int
    started_at: datetime
    finished_at: datetime | None
    holder: str | None
    lease_until: datetime | None
    purpose: KeyPurpose = KeyPurpose.DATA
    """DATA: holder keys move to the target version; LOOKUP: rows filed under older lookup
    tokens are filed again under the target version's tokens."""


@dataclass(frozen=True, slots=True)
class CardReseal:
    """A card's fields sealed under the holder's new key (a key incident's re-encryption)."""

    essc_id: str
    name_sealed: bytes
    id_number_sealed: bytes
    phone_sealed: bytes
    card_number_sealed: bytes
    guardian_sealed: bytes | None


@dataclass(frozen=True, slots=True)
class LookupMove:
    """A holder's rows filed again under the current lookup version's token. When the holder
    already has a key under the new token (a card made after the rotation), the older cards
    are sealed again under that key (`reseals`) and the older key is dropped."""

    bank_id: str
    old_token: str
    new_token: str
    reseals: tuple[CardReseal, ...] = ()

    @property
    def merges(self) -> bool:
        return bool(self.reseals)


@dataclass(frozen=True, slots=True)
class HolderKeyMove:
    old: WrappedHolderKey
    new: WrappedHolderKey
    cards: tuple[CardReseal, ...] = ()


class KeyActionKind(StrEnum):
    """What needs two operators (dual control, K5): one asks, another approves."""

    EXPORT = "EXPORT"
    """The key sealed to a recipient's public key: escrow, or a handover to a third party."""
    DESTROY = "DESTROY"
    """The key's wrapped material deleted: a retired or compromised version nothing needs."""


@dataclass(frozen=True, slots=True)
class KeyAction:
    action_id: str
    kind: KeyActionKind
    bank_id: str
    purpose: KeyPurpose
    version: int
    recipient_public_key: str
    """EXPORT: the recipient's RSA public key (PEM); empty for DESTROY."""
    requested_by: str
    requested_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return key_id(self.bank_id, self.purpose, self.version)
