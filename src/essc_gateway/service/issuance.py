"""Issue an e-SSC: consent (A1), verified identity (A2), one person one card (A3),
guardians for minors and persons without capacity (A5, A13(3)), idempotent per bank."""

from __future__ import annotations

import json
from dataclasses import dataclass

from essc_gateway.clock import Clock
from essc_gateway.domain.models import (
    CardView,
    CivilCapacity,
    Consent,
    Guardian,
    IssueOutcome,
    IssueResult,
    Person,
    guardian_required,
    mask_card_number,
)
from essc_gateway.errors import (
    AlreadyExists,
    Conflict,
    ErrorReason,
    FieldViolation,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
)
from essc_gateway.service.settings import ServiceSettings
from essc_gateway.service.tokens import TokenService, VerificationClaims
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord, IssueAttempt, IssueAttemptState, Store
from essc_gateway.upstream.port import IssueCardCommand, Platform, PlatformCard


@dataclass(frozen=True, slots=True)
class IssueCommand:
    applicant: Person
    verification_token: str
    consent: Consent
    idempotency_key: str
    guardian: Guardian | None


class IssuanceService:
    def __init__(
        self,
        platform: Platform,
        store: Store,
        tokens: TokenService,
        vault: Vault,
        clock: Clock,
        settings: ServiceSettings,
    ) -> None:
        self._platform = platform
        self._store = store
        self._tokens = tokens
        self._vault = vault
        self._clock = clock
        self._settings = settings

    async def issue(self, bank_id: str, command: IssueCommand) -> IssueResult:
        claims = self._tokens.open_verification(command.verification_token, bank_id)
        self._check_same_person(claims, command.applicant)
        self._check_consent(command.consent)
        self._check_guardian_present(command, claims.civil_capacity)

        fingerprint = self._fingerprint(claims.holder_token, command)
        now = self._clock.now()
        existing = await self._store.claim_issue(bank_id, command.idempotency_key, fingerprint, now)
        if existing is not None:
            return await self._replay(existing, fingerprint)
        try:
            return await self._issue_claimed(bank_id, command, claims)
        except BaseException:
            # Nothing was recorded for this key: the bank may retry it (the platform
            # de-duplicates by the same key, so a retry cannot issue twice).
            await self._store.release_issue(bank_id, command.idempotency_key)
            raise

    def _check_same_person(self, claims: VerificationClaims, applicant: Person) -> None:
        vault = self._vault
        if (
            claims.holder_token != vault.holder_token(applicant.citizen_id.value)
            or claims.name_token != vault.token("name", applicant.name)
            or claims.phone_token != vault.token("phone", applicant.mobile_phone)
        ):
            raise PreconditionFailed(
                "applicant differs from the one verified by this token",
                reason=ErrorReason.VERIFICATION_MISMATCH,
            )

    def _check_consent(self, consent: Consent) -> None:
        violations = []
        if consent.agreement_version not in self._settings.agreement_versions:
            violations.append(
                FieldViolation(
                    "consent.agreement_version",
                    "is not a version of the user agreement in force (A12)",
                    "UNKNOWN_AGREEMENT_VERSION",
                )
            )
        if consent.accepted_at > self._clock.now() + self._settings.consent_clock_skew:
            violations.append(
                FieldViolation("consent.accepted_at", "lies in the future", "IN_FUTURE")
            )
        if violations:
            raise InvalidRequest(violations)

    def _check_guardian_present(self, command: IssueCommand, capacity: CivilCapacity) -> None:
        holder = command.applicant.citizen_id
        if command.guardian is None and guardian_required(
            holder, capacity, self._clock.now().date()
        ):
            raise InvalidRequest(
                [
                    FieldViolation(
                        "guardian",
                        "required: the holder is under 14 or without civil capacity (A5, A13(3))",
                        "GUARDIAN_REQUIRED",
                    )
                ]
            )
        if command.guardian is not None and command.guardian.citizen_id == holder:
            raise InvalidRequest(
                [
                    FieldViolation(
                        "guardian.social_security_number",
                        "must not be the applicant",
                        "GUARDIAN_IS_APPLICANT",
                    )
                ]
            )

    def _fingerprint(self, holder_token: str, command: IssueCommand) -> str:
        guardian = command.guardian
        canonical = json.dumps(
            [
                holder_token,
                command.applicant.name,
                command.applicant.mobile_phone,
                command.consent.agreement_version,
                command.consent.accepted_at.isoformat(),
                command.consent.channel.value,
                guardian.citizen_id.value if guardian else "",
                guardian.relation.value if guardian else "",
            ],
            ensure_ascii=False,
        )
        return self._vault.token("issue-request", canonical)

    async def _replay(self, attempt: IssueAttempt, fingerprint: str) -> IssueResult:
        if attempt.fingerprint != fingerprint:
            raise PreconditionFailed(
                "idempotency key was used for a different request",
                reason=ErrorReason.IDEMPOTENCY_KEY_REUSED,
            )
        if attempt.state is IssueAttemptState.PENDING or attempt.essc_id is None:
            raise Conflict(
                "a request with this idempotency key is in progress; retry shortly",
                reason=ErrorReason.REQUEST_IN_PROGRESS,
            )
        card = await self._store.get_card(attempt.essc_id)
        if card is None:
            raise NotFound("card of this request no longer exists")
        current = await self._platform.get_card(card.essc_id)
        return IssueResult(IssueOutcome.REPLAYED, self._view(current, card.consent_version))

    async def _issue_claimed(
        self, bank_id: str, command: IssueCommand, claims: VerificationClaims
    ) -> IssueResult:
        local = await self._store.active_card_for_holder(claims.holder_token)
        if local is not None:
            return await self._already_held(bank_id, command, local.bank_id, local.essc_id)
        if command.guardian is not None:
            await self._verify_guardian(command.guardian)
        platform_key = f"{bank_id}:{command.idempotency_key}"
        issued = await self._platform.issue_card(
            IssueCardCommand(
                idempotency_key=platform_key,
                bank_id=bank_id,
                id_number=command.applicant.citizen_id.value,
                name=command.applicant.name,
                mobile_phone=command.applicant.mobile_phone,
                # The physical card Verify proved; the platform binds the e-SSC to it.
                card_number=claims.card_number,
                guardian_id_number=command.guardian.citizen_id.value if command.guardian else "",
            )
        )
        if issued.card.bank_id != bank_id:
            raise AlreadyExists(
                "the holder already has an e-SSC issued through another bank (A3)",
                reason=ErrorReason.CARD_HELD_BY_OTHER_BANK,
            )
        # ISSUED or REPLAYED (an earlier attempt reached the platform but not our store), or
        # ALREADY_HELD with this bank while our record is missing: record it now.
        record = self._record(bank_id, command, claims.holder_token, issued.card)
        outcome = (
            IssueOutcome.ALREADY_HELD
            if issued.outcome is IssueOutcome.ALREADY_HELD
            else IssueOutcome.ISSUED
        )
        await self._store.complete_issue(
            bank_id, command.idempotency_key, outcome.value, record.essc_id, record
        )
        return IssueResult(outcome, self._view(issued.card, command.consent.agreement_version))

    async def _already_held(
        self, bank_id: str, command: IssueCommand, holder_bank: str, essc_id: str
    ) -> IssueResult:
        if holder_bank != bank_id:
            raise AlreadyExists(
                "the holder already has an e-SSC issued through another bank (A3)",
                reason=ErrorReason.CARD_HELD_BY_OTHER_BANK,
            )
        current = await self._platform.get_card(essc_id)
        local = await self._store.get_card(essc_id)
        version = local.consent_version if local else command.consent.agreement_version
        await self._store.complete_issue(
            bank_id, command.idempotency_key, IssueOutcome.ALREADY_HELD.value, essc_id, None
        )
        return IssueResult(IssueOutcome.ALREADY_HELD, self._view(current, version))

    async def _verify_guardian(self, guardian: Guardian) -> None:
        # A5: the guardian must be a real, adult person with full civil capacity.
        try:
            check = await self._platform.check_real_name(
                guardian.name, guardian.citizen_id.value, guardian.mobile_phone
            )
        except NotFound:
            check = None
        adult = guardian.citizen_id.age_on(self._clock.now().date()) >= 18
        if (
            check is None
            or not check.result.passed
            or check.civil_capacity is not CivilCapacity.FULL
            or not adult
        ):
            raise PreconditionFailed(
                "guardian could not be verified as an adult with full civil capacity (A5)",
                reason=ErrorReason.GUARDIAN_NOT_VERIFIED,
            )

    def _record(
        self, bank_id: str, command: IssueCommand, holder_token: str, card: PlatformCard
    ) -> CardRecord:
        essc_id = card.essc_id
        seal = self._vault.seal
        applicant = command.applicant
        return CardRecord(
            essc_id=essc_id,
            bank_id=bank_id,
            holder_token=holder_token,
            name_sealed=seal(essc_id, "name", applicant.name),
            id_number_sealed=seal(essc_id, "id_number", applicant.citizen_id.value),
            phone_sealed=seal(essc_id, "phone", applicant.mobile_phone),
            card_number_sealed=seal(essc_id, "card_number", card.card_number),
            status=card.status.value,
            issued_at=card.issued_at,
            consent_version=command.consent.agreement_version,
            consent_accepted_at=command.consent.accepted_at,
            consent_channel=command.consent.channel.value,
            guardian_sealed=(
                self._vault.seal_guardian(essc_id, command.guardian) if command.guardian else None
            ),
            guardian_relation=command.guardian.relation.value if command.guardian else None,
        )

    @staticmethod
    def _view(card: PlatformCard, agreement_version: str) -> CardView:
        return CardView(
            essc_id=card.essc_id,
            physical_card_number_masked=mask_card_number(card.card_number),
            status=card.status,
            issued_at=card.issued_at,
            agreement_version=agreement_version,
        )
