"""Domain values passed between the transport, the services and the ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from essc_gateway.domain.citizen_id import CitizenId, mask_id


class CivilCapacity(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    FULL = "FULL"
    LIMITED = "LIMITED"
    NONE = "NONE"


class CardStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    LOST_CONTINUED_USE = "LOST_CONTINUED_USE"
    TERMINATED = "TERMINATED"


class ConsentChannel(StrEnum):
    MOBILE_APP = "MOBILE_APP"
    ONLINE_BANKING = "ONLINE_BANKING"
    BRANCH_COUNTER = "BRANCH_COUNTER"
    SELF_SERVICE_TERMINAL = "SELF_SERVICE_TERMINAL"


class GuardianRelation(StrEnum):
    PARENT = "PARENT"
    LEGAL_GUARDIAN = "LEGAL_GUARDIAN"
    APPOINTED_GUARDIAN = "APPOINTED_GUARDIAN"


class Scenario(StrEnum):
    """Business scenarios; each needs its own set of factors (A8)."""

    VIEW_CARD = "VIEW_CARD"
    QUERY_RECORDS = "QUERY_RECORDS"
    MEDICAL_SETTLEMENT = "MEDICAL_SETTLEMENT"
    PAYMENT = "PAYMENT"
    CARD_LOSS = "CARD_LOSS"
    UNBIND = "UNBIND"


class Factor(StrEnum):
    PASSWORD = "PASSWORD"
    SMS_CODE = "SMS_CODE"
    BIOMETRIC = "BIOMETRIC"


class IssueOutcome(StrEnum):
    ISSUED = "ISSUED"
    REPLAYED = "REPLAYED"
    ALREADY_HELD = "ALREADY_HELD"
    PENDING = "PENDING"


class AuthState(StrEnum):
    AUTHENTICATED = "AUTHENTICATED"
    PASSWORD_CHANGE_REQUIRED = "PASSWORD_CHANGE_REQUIRED"


@dataclass(frozen=True, slots=True)
class Person:
    """Validated identity of a person. `repr` masks everything personal."""

    name: str
    citizen_id: CitizenId
    mobile_phone: str  # E.164

    def __repr__(self) -> str:
        return f"Person(id={mask_id(self.citizen_id.value)})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Consent:
    """Acceptance of the user agreement (A1): which version, when, through which channel."""

    agreement_version: str
    accepted_at: datetime
    channel: ConsentChannel


@dataclass(frozen=True, slots=True)
class Guardian:
    """Applies for a minor or a person without civil capacity (A5, A13(3))."""

    name: str
    citizen_id: CitizenId
    mobile_phone: str
    relation: GuardianRelation

    def __repr__(self) -> str:
        return f"Guardian(id={mask_id(self.citizen_id.value)}, relation={self.relation})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class CardView:
    """An e-SSC as the bank may see it: the physical card number is masked."""

    essc_id: str
    physical_card_number_masked: str
    status: CardStatus
    issued_at: datetime
    agreement_version: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    passed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Verification:
    """Outcome of Verify (A2)."""

    real_name: CheckResult
    real_card: CheckResult
    real_person: CheckResult
    civil_capacity: CivilCapacity
    guardian_required: bool
    token: str = ""
    token_expires_at: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.real_name.passed and self.real_card.passed and self.real_person.passed


@dataclass(frozen=True, slots=True)
class IssueResult:
    outcome: IssueOutcome
    card: CardView | None
    """None while PENDING (store-and-forward)."""
    forward_after: datetime | None = None


class IssueState(StrEnum):
    PENDING = "PENDING"
    """Accepted during a maintenance window, forwarded after it."""
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    IN_PROGRESS = "IN_PROGRESS"
    """A request with the key is being processed now."""
    IN_DOUBT = "IN_DOUBT"
    """The platform may have issued it; being settled with the platform."""


@dataclass(frozen=True, slots=True)
class IssueStatus:
    """What became of an issuance, by its idempotency key."""

    state: IssueState
    accepted_at: datetime
    outcome: IssueOutcome | None = None
    card: CardView | None = None
    failure_reason: str = ""
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuthResult:
    state: AuthState
    verified_factors: tuple[Factor, ...]
    token: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Contribution:
    insurance_type: str
    period: str
    base_fen: int
    employer_fen: int
    personal_fen: int


@dataclass(frozen=True, slots=True)
class Qualification:
    title: str
    level: str
    certificate_number: str
    issued_on: str


@dataclass(frozen=True, slots=True)
class SocialSecurityInfo:
    """What Query returns (A13(1), K)."""

    card: CardView
    personal_status: str
    contributions: tuple[Contribution, ...] = field(default_factory=tuple)
    pension_balance_fen: int = 0
    medical_balance_fen: int = 0
    qualifications: tuple[Qualification, ...] = field(default_factory=tuple)


def mask_card_number(card_number: str) -> str:
    """All but the last 4 characters masked."""
    return "*" * max(len(card_number) - 4, 0) + card_number[-4:]


def guardian_required(holder: CitizenId, capacity: CivilCapacity, today: date) -> bool:
    """A child under 14 or a person without civil capacity needs a guardian (A5, A13(3)).
    An unknown capacity is treated as none: the safe side."""
    return holder.age_on(today) < 14 or capacity in (CivilCapacity.NONE, CivilCapacity.UNSPECIFIED)
