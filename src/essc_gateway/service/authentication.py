"""Holder authentication by business scenario (A7, A8), the initial password (K1, K3),
SMS codes and lockout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from essc_gateway.clock import Clock
from essc_gateway.domain.auth_policy import AuthPolicy
from essc_gateway.domain.citizen_id import CitizenId
from essc_gateway.domain.models import AuthResult, AuthState, Factor, Scenario
from essc_gateway.domain.passwords import WEAKNESS_DESCRIPTIONS, password_weakness
from essc_gateway.errors import (
    ErrorReason,
    FieldViolation,
    InvalidRequest,
    PlatformError,
    PreconditionFailed,
)
from essc_gateway.service.card_use import require_usable
from essc_gateway.service.concurrency import fan_out
from essc_gateway.service.holders import Holders
from essc_gateway.service.tokens import TokenService
from essc_gateway.service.vault import Vault
from essc_gateway.upstream.port import Platform, PlatformCard

_FACTOR_FIELDS = {
    Factor.PASSWORD: "factors.password",
    Factor.SMS_CODE: "factors.sms_code",
    Factor.BIOMETRIC: "factors.biometric_sample",
}


@dataclass(frozen=True, slots=True)
class FactorInput:
    password: str = ""
    sms_code: str = ""
    biometric_sample: bytes = b""

    def __repr__(self) -> str:  # never show secrets
        return "FactorInput(<redacted>)"

    def has(self, factor: Factor) -> bool:
        return bool(
            {
                Factor.PASSWORD: self.password,
                Factor.SMS_CODE: self.sms_code,
                Factor.BIOMETRIC: self.biometric_sample,
            }[factor]
        )


class AuthenticationService:
    def __init__(
        self,
        platform: Platform,
        holders: Holders,
        tokens: TokenService,
        vault: Vault,
        policy: AuthPolicy,
        clock: Clock,
    ) -> None:
        self._platform = platform
        self._holders = holders
        self._tokens = tokens
        self._vault = vault
        self._policy = policy
        self._clock = clock

    async def request_sms_code(
        self, bank_id: str, holder: CitizenId, scenario: Scenario
    ) -> datetime:
        if Factor.SMS_CODE not in self._policy.required(bank_id, scenario):  # A8
            raise PreconditionFailed(
                f"scenario {scenario} needs no SMS code at this bank",
                reason=ErrorReason.SMS_NOT_REQUIRED,
            )
        card = await self._holders.card_of(bank_id, holder.value)
        return await self._holders.send_sms_code(
            card.holder_token,
            scenario.value,
            lambda: self._platform.send_sms_code(holder.value, scenario.value),
        )

    async def authenticate(
        self, bank_id: str, holder: CitizenId, scenario: Scenario, factors: FactorInput
    ) -> AuthResult:
        required = self._policy.required(bank_id, scenario)
        missing = [f for f in sorted(required) if not factors.has(f)]
        if missing:
            raise InvalidRequest(
                [
                    FieldViolation(
                        _FACTOR_FIELDS[f], f"required for scenario {scenario} (A8)", "REQUIRED"
                    )
                    for f in missing
                ]
            )
        card = await self._holders.card_of(bank_id, holder.value)
        async with self._holders.attempt(card.holder_token) as attempt:
            failures, password_is_initial, platform_card = await self._check_factors(
                holder.value, scenario, required, factors, card.essc_id
            )
            if failures:
                raise await attempt.failed(failures)
            await attempt.succeeded()
        require_usable(platform_card.status, scenario)
        verified = tuple(sorted(required))
        if password_is_initial:
            # K1/K3: the initial password only opens the way to changing it.
            return AuthResult(AuthState.PASSWORD_CHANGE_REQUIRED, verified)
        token, expires_at = self._tokens.issue_auth(
            bank_id, card.essc_id, card.holder_token, scenario, verified
        )
        return AuthResult(AuthState.AUTHENTICATED, verified, token, expires_at)

    async def _check_factors(
        self,
        id_number: str,
        scenario: Scenario,
        required: frozenset[Factor],
        factors: FactorInput,
        essc_id: str,
    ) -> tuple[dict[Factor, str], bool, PlatformCard]:
        platform = self._platform
        async with fan_out() as group:
            card_task = group.create_task(platform.get_card(essc_id))
            password = sms = biometric = None
            if Factor.PASSWORD in required:
                password = group.create_task(platform.verify_password(id_number, factors.password))
            if Factor.SMS_CODE in required:
                sms = group.create_task(
                    platform.verify_sms_code(id_number, factors.sms_code, scenario.value)
                )
            if Factor.BIOMETRIC in required:
                biometric = group.create_task(
                    platform.verify_biometric(id_number, factors.biometric_sample)
                )
        failures: dict[Factor, str] = {}
        is_initial = False
        if password is not None:
            result = password.result()
            is_initial = result.matched and result.is_initial
            if not result.matched:
                failures[Factor.PASSWORD] = "PASSWORD_MISMATCH"
        if sms is not None and not (sms_result := sms.result()).matched:
            failures[Factor.SMS_CODE] = sms_result.reason or "CODE_MISMATCH"
        if biometric is not None and not biometric.result():
            failures[Factor.BIOMETRIC] = "BIOMETRIC_MISMATCH"
        return failures, is_initial, card_task.result()

    async def change_password(
        self, bank_id: str, holder: CitizenId, current: str, new: str, idempotency_key: str
    ) -> datetime:
        weakness = password_weakness(new, current, holder)
        if weakness is not None:
            raise InvalidRequest(
                [FieldViolation("new_password", WEAKNESS_DESCRIPTIONS[weakness], weakness.value)]
            )
        card = await self._holders.card_of(bank_id, holder.value)
        async with self._holders.attempt(card.holder_token) as attempt:
            change = await self._platform.change_password(
                holder.value, current, new, f"{bank_id}:{idempotency_key}"
            )
            if not change.changed:
                raise await attempt.failed({Factor.PASSWORD: change.reason or "PASSWORD_MISMATCH"})
            await attempt.succeeded()
        if change.changed_at is None:
            raise PlatformError("ChangePassword: no change time in answer", upstream_code="OK")
        return change.changed_at
