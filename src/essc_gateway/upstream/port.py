"""The `Platform` port: what the gateway asks of the national platform, in domain terms.

Implementations raise `essc_gateway.errors` types: `PlatformUnavailable`/`PlatformTimeout`
when the platform gives no usable answer, `NotFound`/`PreconditionFailed`/`PermissionDenied`
for its business refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from essc_gateway.domain.models import (
    CardStatus,
    CheckResult,
    CivilCapacity,
    Contribution,
    IssueOutcome,
    Qualification,
)


@dataclass(frozen=True, slots=True)
class NameCheck:
    result: CheckResult
    civil_capacity: CivilCapacity


@dataclass(frozen=True, slots=True)
class PlatformCard:
    essc_id: str
    bank_id: str
    card_number: str
    status: CardStatus
    issued_at: datetime
    terminated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlatformIssue:
    outcome: IssueOutcome
    card: PlatformCard


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    matched: bool
    is_initial: bool


@dataclass(frozen=True, slots=True)
class SmsCheck:
    matched: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PasswordChange:
    changed: bool
    reason: str = ""
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssueCardCommand:
    idempotency_key: str
    bank_id: str
    id_number: str
    name: str
    mobile_phone: str
    card_number: str
    guardian_id_number: str = ""


class Platform(Protocol):
    async def check_real_name(self, name: str, id_number: str, mobile_phone: str) -> NameCheck: ...

    async def check_real_card(self, id_number: str, card_number: str) -> CheckResult: ...

    async def check_real_person(self, id_number: str, biometric_sample: bytes) -> CheckResult: ...

    async def issue_card(self, command: IssueCardCommand) -> PlatformIssue: ...

    async def lookup_issue(self, idempotency_key: str) -> PlatformIssue | None:
        """What the platform did with an IssueCard of this key; None if it never got it.
        A service of its own (OperationService), with its own circuit: an IssueCard outage
        does not stop in-doubt issuances from being settled."""
        ...

    async def get_card(self, essc_id: str) -> PlatformCard: ...

    async def authorize_continued_use(self, essc_id: str) -> PlatformCard: ...

    async def terminate_card(
        self, essc_id: str, bank_id: str, idempotency_key: str
    ) -> PlatformCard: ...

    async def send_sms_code(self, id_number: str, purpose: str) -> datetime: ...

    async def verify_password(self, id_number: str, password: str) -> PasswordCheck: ...

    async def verify_sms_code(self, id_number: str, code: str, purpose: str) -> SmsCheck: ...

    async def verify_biometric(self, id_number: str, biometric_sample: bytes) -> bool: ...

    async def change_password(
        self, id_number: str, current: str, new: str, idempotency_key: str
    ) -> PasswordChange: ...

    async def personal_status(self, id_number: str) -> str: ...

    async def contributions(self, id_number: str) -> tuple[Contribution, ...]: ...

    async def accounts(self, id_number: str) -> tuple[int, int]:
        """(pension balance, medical balance) in fen."""
        ...

    async def qualifications(self, id_number: str) -> tuple[Qualification, ...]: ...

    async def close(self) -> None: ...
