"""Erasures and disclosures as the evidence log keeps them: grounds, references, counts and
pseudonyms, never personal data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from essc_gateway.keys.keyring import lookup_version_of


class ErasureGround(StrEnum):
    """Why a holder's data is erased: A14's five grounds, and the end of retention."""

    UNLAWFUL_PROCESSING = "UNLAWFUL_PROCESSING"
    """A14(1): processing breaks laws or regulations."""
    NO_CONSENT = "NO_CONSENT"
    """A14(2): collected or used without the holder's consent."""
    AGREEMENT_BREACHED = "AGREEMENT_BREACHED"
    """A14(3): processing breaks the agreement."""
    SERVICE_ENDED_BY_HOLDER = "SERVICE_ENDED_BY_HOLDER"
    """A14(4): the holder stopped using the service or closed the account."""
    SERVICE_ENDED_BY_BANK = "SERVICE_ENDED_BY_BANK"
    """A14(5): the bank stops providing the service."""
    RETENTION_ENDED = "RETENTION_ENDED"
    """A13(3), A14(4): kept no longer than its purpose (the retention job's ground)."""


class DisclosureGround(StrEnum):
    """A13(2): the only grounds on which a holder's data goes to a third party."""

    HOLDER_AUTHORISED = "HOLDER_AUTHORISED"
    """(a) with the holder's authorisation under the agreement."""
    LAW_OR_REGULATION = "LAW_OR_REGULATION"
    """(b) as laws or regulations require."""
    COMPETENT_AUTHORITY = "COMPETENT_AUTHORITY"
    """(c) at the request of a competent authority (government, judiciary)."""
    PERSONAL_INFORMATION_STANDARD = "PERSONAL_INFORMATION_STANDARD"
    """(d) under the exceptions of national personal-information standards."""
    PUBLIC_INTEREST = "PUBLIC_INTEREST"
    """(e) to protect the public interest."""


@dataclass(frozen=True, slots=True)
class ErasedCounts:
    cards: int
    holder_keys: int
    records_unlinked: int
    """Liability records whose link to the holder is gone (the records stay)."""
    other_rows: int
    """Lockouts, SMS throttles, disclosure history, issuance attempts."""
    live_cards: int = 0
    """Of `cards`, those not terminated: still live on the platform, which the bank must
    terminate there itself (the gateway no longer knows the holder)."""
    records_under_lookup_token: int = 0
    """Of `records_unlinked`, those written before holder references (schema 14): their
    hashed evidence names the holder's lookup token itself, which leads to the person
    until every LOOKUP key version in `lookup_versions` is destroyed (README)."""
    lookup_versions: tuple[int, ...] = ()

    @property
    def anything(self) -> bool:
        return bool(self.cards or self.holder_keys or self.records_unlinked or self.other_rows)


def lookup_versions(tokens: Iterable[str]) -> tuple[int, ...]:
    """The LOOKUP key versions `tokens` were made under, in order."""
    return tuple(sorted({v for t in tokens if (v := lookup_version_of(t)) is not None}))


@dataclass(frozen=True, slots=True)
class Erasure:
    """One holder's erasure (or a bank-wide one's step), as recorded."""

    erasure_id: str
    """Random: the pseudonym the record names, which leads to nobody."""
    bank_id: str
    ground: ErasureGround
    reference: str
    """The privacy officer's case reference (a ticket, a court order's number)."""
    operator: str
    at: datetime
    counts: ErasedCounts


@dataclass(frozen=True, slots=True)
class Disclosure:
    disclosure_id: str
    bank_id: str
    holder_ref: str
    """A commitment to the holder (salted; the salt is kept with the disclosure row and
    erased with the holder): the evidence names nobody."""
    recipient: str
    ground: DisclosureGround
    reference: str
    fields: tuple[str, ...]
    operator: str
    at: datetime


class ErasureJobKind(StrEnum):
    BANK_STOPPED = "BANK_STOPPED"
    """A14(5): every holder of a bank that stops the service."""
    RETENTION = "RETENTION"
    """A13(3), A14(4): a bank's holders whose retention ended (a scheduled run, once a day
    across replicas)."""


@dataclass(frozen=True, slots=True)
class ErasureJob:
    """Many erasures as one audited operation: leased by one replica at a time, throttled,
    resumed by any replica after a kill (each holder's erasure is its own transaction)."""

    job_id: str
    kind: ErasureJobKind
    bank_id: str
    reference: str
    operator: str
    started_at: datetime
    finished_at: datetime | None = None
    erased: int = 0
    """Holders erased so far."""
    waiting: int = 0
    """Holders left for later: an issuance of theirs had not settled (the last pass)."""
    holder: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long data is kept after its purpose ended (A13(3), A14(4))."""

    after_termination: timedelta = timedelta(days=3 * 365)
    """A holder whose every card is terminated: erased this long after the last ended."""
    guardian_after_majority: timedelta = timedelta(days=365)
    """A guardian's data on a card issued under guardianship (A5): removed this long after
    the holder came of age (18), when it stopped being needed."""

    def __post_init__(self) -> None:
        for name in ("after_termination", "guardian_after_majority"):
            value: timedelta = getattr(self, name)
            if not timedelta(0) <= value <= timedelta(days=100 * 365):
                raise ValueError(f"retention {name} must be between 0 and 100 years")
