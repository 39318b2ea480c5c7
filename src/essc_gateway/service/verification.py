"""Verify: real name, real card, real person (A2), asked of the platform concurrently."""

from __future__ import annotations

from essc_gateway.clock import Clock
from essc_gateway.domain.models import (
    CheckResult,
    CivilCapacity,
    Person,
    Verification,
    guardian_required,
)
from essc_gateway.service.concurrency import fan_out
from essc_gateway.service.tokens import TokenService
from essc_gateway.service.vault import Vault
from essc_gateway.upstream.port import Platform

_NAME_OR_ID = frozenset({"PERSON_NOT_FOUND", "NAME_MISMATCH"})
_PERSON_NOT_FOUND = "PERSON_NOT_FOUND"


def _unknown_as_mismatch(check: CheckResult, mismatch: str) -> CheckResult:
    """An unknown ID reads as a registered one whose card or face does not match (A13(1)):
    no check tells a bank whether an ID number is registered."""
    if check.reason == _PERSON_NOT_FOUND:
        return CheckResult(passed=False, reason=mismatch)
    return check


class VerificationService:
    def __init__(
        self, platform: Platform, tokens: TokenService, vault: Vault, clock: Clock
    ) -> None:
        self._platform = platform
        self._tokens = tokens
        self._vault = vault
        self._clock = clock

    async def verify(
        self, bank_id: str, person: Person, card_number: str, biometric_sample: bytes
    ) -> Verification:
        id_number = person.citizen_id.value
        async with fan_out() as group:
            name = group.create_task(
                self._platform.check_real_name(person.name, id_number, person.mobile_phone)
            )
            card = group.create_task(self._platform.check_real_card(id_number, card_number))
            live = group.create_task(self._platform.check_real_person(id_number, biometric_sample))
        today = self._clock.now().date()
        name_check = name.result()
        real_name = name_check.result
        # Capacity and guardian needs are told only to a bank that knows who the person is;
        # whether an ID exists is not told apart from a wrong name (A13(1)).
        capacity = name_check.civil_capacity if real_name.passed else CivilCapacity.UNSPECIFIED
        if real_name.reason in _NAME_OR_ID:
            real_name = CheckResult(passed=False, reason="NAME_OR_ID_MISMATCH")
        result = Verification(
            real_name=real_name,
            real_card=_unknown_as_mismatch(card.result(), "CARD_NUMBER_MISMATCH"),
            real_person=_unknown_as_mismatch(live.result(), "BIOMETRIC_MISMATCH"),
            civil_capacity=capacity,
            # Under 14 follows from the ID the bank sent (A5), whether or not it is known;
            # missing capacity only from the register.
            guardian_required=guardian_required(person.citizen_id, capacity, today)
            if real_name.passed
            else person.citizen_id.age_on(today) < 14,
        )
        if not result.verified:
            return result
        # A2: only when all three pass may the e-SSC be issued; the token carries that proof.
        token, expires_at = self._tokens.issue_verification(
            bank_id=bank_id,
            holder_token=self._vault.holder_token(bank_id, id_number),
            name_token=self._vault.token(bank_id, "name", person.name),
            phone_token=self._vault.token(bank_id, "phone", person.mobile_phone),
            civil_capacity=capacity,
            card_number=card_number,
        )
        return Verification(
            real_name=result.real_name,
            real_card=result.real_card,
            real_person=result.real_person,
            civil_capacity=capacity,
            guardian_required=result.guardian_required,
            token=token,
            token_expires_at=expires_at,
        )
