"""Short-lived tokens handed to banks: a verification (Verify -> Issue) and an auth token
(Authenticate -> Query, Terminate...). Sealed under the bank's TOKENS key: opaque to the
bank, unforgeable, and carrying no personal data in clear, only keyed lookup tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from essc_gateway.clock import Clock
from essc_gateway.crypto import DecryptionError, TokenSealer
from essc_gateway.domain.models import CivilCapacity, Factor, Scenario
from essc_gateway.errors import (
    ErrorReason,
    PermissionDenied,
    PreconditionFailed,
    Unauthenticated,
)
from essc_gateway.service.settings import ServiceSettings

_VERIFICATION = "vt1"
_AUTH = "at1"


@dataclass(frozen=True, slots=True)
class VerificationClaims:
    bank_id: str
    holder_token: str
    name_token: str
    phone_token: str
    civil_capacity: CivilCapacity
    # Sealed inside the token: Issue binds the e-SSC to the card that Verify proved.
    card_number: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuthClaims:
    bank_id: str
    essc_id: str
    holder_token: str
    scenario: Scenario
    factors: tuple[Factor, ...]
    expires_at: datetime


class TokenService:
    def __init__(self, sealer: TokenSealer, clock: Clock, settings: ServiceSettings) -> None:
        self._sealer = sealer
        self._clock = clock
        self._settings = settings

    def _open(self, kind: str, token: str, bank_id: str) -> dict[str, Any] | None:
        try:
            return self._sealer.open(bank_id, kind, token)
        except (DecryptionError, ValueError):
            return None

    def issue_verification(
        self,
        bank_id: str,
        holder_token: str,
        name_token: str,
        phone_token: str,
        civil_capacity: CivilCapacity,
        card_number: str,
    ) -> tuple[str, datetime]:
        expires_at = self._clock.now() + self._settings.verification_token_ttl
        token = self._sealer.seal(
            bank_id,
            _VERIFICATION,
            {
                "b": bank_id,
                "h": holder_token,
                "n": name_token,
                "p": phone_token,
                "c": civil_capacity.value,
                "k": card_number,
                "x": expires_at.timestamp(),
            },
        )
        return token, expires_at

    def open_verification(self, token: str, bank_id: str) -> VerificationClaims:
        """Raises PreconditionFailed: Issue needs a fresh Verify by the same bank."""
        payload = self._open(_VERIFICATION, token, bank_id)
        if payload is None or payload.get("b") != bank_id:
            raise PreconditionFailed(
                "verification token is not valid; call Verify first",
                reason=ErrorReason.VERIFICATION_TOKEN_INVALID,
            )
        expires_at = datetime.fromtimestamp(float(payload["x"]), UTC)
        if self._clock.now() >= expires_at:
            raise PreconditionFailed(
                "verification token has expired; call Verify again",
                reason=ErrorReason.VERIFICATION_TOKEN_EXPIRED,
            )
        return VerificationClaims(
            bank_id=bank_id,
            holder_token=str(payload["h"]),
            name_token=str(payload["n"]),
            phone_token=str(payload["p"]),
            civil_capacity=CivilCapacity(payload["c"]),
            card_number=str(payload["k"]),
            expires_at=expires_at,
        )

    def issue_auth(
        self,
        bank_id: str,
        essc_id: str,
        holder_token: str,
        scenario: Scenario,
        factors: tuple[Factor, ...],
    ) -> tuple[str, datetime]:
        expires_at = self._clock.now() + self._settings.auth_token_ttl
        token = self._sealer.seal(
            bank_id,
            _AUTH,
            {
                "b": bank_id,
                "e": essc_id,
                "h": holder_token,
                "s": scenario.value,
                "f": [f.value for f in factors],
                "x": expires_at.timestamp(),
            },
        )
        return token, expires_at

    def holder_of_auth(self, token: str, bank_id: str) -> str | None:
        """The holder's lookup token inside a bank's auth token, expired or not (to file a
        refused request under its holder for complaints); None if it is not one of the
        bank's tokens."""
        payload = self._open(_AUTH, token, bank_id)
        if payload is None or payload.get("b") != bank_id:
            return None
        return str(payload["h"])

    def open_auth(self, token: str, bank_id: str, allowed: frozenset[Scenario]) -> AuthClaims:
        """Raises Unauthenticated (bad or expired) or PermissionDenied (wrong scenario)."""
        payload = self._open(_AUTH, token, bank_id)
        # Another bank's token is reported exactly like a forged one: nothing leaks across banks.
        if payload is None or payload.get("b") != bank_id:
            raise Unauthenticated(
                "auth token is not valid; call Authenticate",
                reason=ErrorReason.AUTH_TOKEN_INVALID,
            )
        expires_at = datetime.fromtimestamp(float(payload["x"]), UTC)
        if self._clock.now() >= expires_at:
            raise Unauthenticated(
                "auth token has expired; call Authenticate again",
                reason=ErrorReason.AUTH_TOKEN_EXPIRED,
            )
        scenario = Scenario(payload["s"])
        if scenario not in allowed:
            raise PermissionDenied(
                f"auth token was issued for {scenario}; this call needs "
                + " or ".join(sorted(allowed)),
                reason=ErrorReason.AUTH_TOKEN_WRONG_SCENARIO,
                metadata={"token_scenario": scenario.value, "required": ",".join(sorted(allowed))},
            )
        return AuthClaims(
            bank_id=bank_id,
            essc_id=str(payload["e"]),
            holder_token=str(payload["h"]),
            scenario=scenario,
            factors=tuple(Factor(f) for f in payload["f"]),
            expires_at=expires_at,
        )
