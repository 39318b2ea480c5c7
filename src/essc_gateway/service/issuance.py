"""Issue an e-SSC: consent (A1), verified identity (A2), one person one card (A3),
guardians for minors and persons without capacity (A5, A13(3)), idempotent per bank."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from essc_gateway.clock import Clock
from essc_gateway.deadlines import request_deadline
from essc_gateway.domain.citizen_id import normalise_id_text
from essc_gateway.domain.maintenance import MaintenanceWindow
from essc_gateway.domain.models import (
    CivilCapacity,
    Consent,
    Guardian,
    IssueOutcome,
    IssueResult,
    Person,
    guardian_required,
)
from essc_gateway.errors import (
    AlreadyExists,
    Conflict,
    ErrorReason,
    FieldViolation,
    GatewayError,
    InternalError,
    InvalidRequest,
    NotFound,
    PlatformError,
    PreconditionFailed,
    StoreFailure,
)
from essc_gateway.keys.keyring import HolderKey
from essc_gateway.service.cards import card_view
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.service.settings import ServiceSettings
from essc_gateway.service.tokens import TokenService, VerificationClaims
from essc_gateway.service.vault import Fingerprint, IssueDraft, Vault
from essc_gateway.store.base import (
    CardRecord,
    ClaimLost,
    HolderKeyTaken,
    IssueAttempt,
    IssueAttemptState,
    IssueClaim,
    LiveCardConflict,
    Store,
    StoreError,
    StoreUnavailable,
)
from essc_gateway.upstream.outcomes import Outcome
from essc_gateway.upstream.port import IssueCardCommand, Platform, PlatformCard, PlatformIssue

log = logging.getLogger(__name__)
# Agreement versions take effect on a day in China (UTC+8, no daylight saving).
CHINA_TIME = timezone(timedelta(hours=8))


@dataclass(slots=True)
class _Progress:
    """How far one claim of a key went, to know what to leave behind after a failure."""

    claim: str
    """The claim's token: of the request, or of the forwarder's claim on the queue entry."""
    forwarded: bool = False
    """An issuance accepted for forwarding, sent by the forwarder: the queue keeps it."""
    maybe_processed: bool = False
    """The key was in doubt when claimed and the platform was not asked yet."""
    sent: bool = False
    """IssueCard was called (or found done): the platform may hold a card for the key."""


# Most Issues are answered in milliseconds: the retry of one in progress can come soon.
_IN_PROGRESS_RETRY = timedelta(seconds=1)
_MIN_RETRY = timedelta(milliseconds=100)


@dataclass(frozen=True, slots=True)
class IssueCommand:
    applicant: Person
    verification_token: str
    consent: Consent
    idempotency_key: str
    guardian: Guardian | None


# Attempts a new request with the same key may take over (see Store.claim_issue).
_UNSETTLED = frozenset({IssueAttemptState.PENDING, IssueAttemptState.IN_DOUBT})


class IssuanceService:
    def __init__(
        self,
        platform: Platform,
        store: Store,
        tokens: TokenService,
        vault: Vault,
        clock: Clock,
        settings: ServiceSettings,
        calendar: MaintenanceCalendar,
        forwarding_banks: frozenset[str] = frozenset(),
    ) -> None:
        """Args:
        forwarding_banks: banks that opted issuance into store-and-forward during
            maintenance windows.
        """
        self._platform = platform
        self._store = store
        self._tokens = tokens
        self._vault = vault
        self._clock = clock
        self._settings = settings
        self._calendar = calendar
        self._forwarding_banks = forwarding_banks

    async def issue(self, bank_id: str, command: IssueCommand) -> IssueResult:
        fingerprint = self._fingerprint(bank_id, command)
        try:
            draft = self._draft(bank_id, command)
        except GatewayError:
            # A repeat of a finished request replays its result, however old its token is
            # (and whatever else changed since, such as the consent's age). Looked for only
            # here: a request that passes its checks learns of an earlier one from its claim.
            earlier = await self._settled_attempt(bank_id, command.idempotency_key)
            if earlier is None:
                raise
            return await self._replay(earlier, fingerprint)
        now = self._clock.now()
        lease = self._lease_seconds()
        lease_end = self._clock.monotonic() + lease
        try:
            claim = await self._claim(draft, fingerprint.current, now, lease)
        except StoreUnavailable as failure:
            # A store that reads but cannot write still replays a finished request.
            earlier = await self._settled_attempt(bank_id, command.idempotency_key)
            if earlier is None:
                raise _store_failure(maybe_processed=False) from failure
            return await self._replay(earlier, fingerprint)
        if claim.existing is not None:
            return await self._replay(claim.existing, fingerprint)
        progress = _Progress(claim.token, maybe_processed=claim.was_in_doubt)
        # Every platform call of this request ends with its lease: whoever takes the key
        # over after the lease can rely on this request having stopped calling.
        current = request_deadline.get()
        deadline = request_deadline.set(lease_end if current is None else min(current, lease_end))
        try:
            return await self._run_claimed(draft, progress, now)
        except BaseException as failure:
            maybe_processed = await self._leave_claim(draft, progress, failure)
            if isinstance(failure, StoreUnavailable):
                raise _store_failure(maybe_processed) from failure
            if isinstance(failure, ClaimLost):
                raise Conflict(
                    "a request with this idempotency key took it over; retry shortly",
                    reason=ErrorReason.REQUEST_IN_PROGRESS,
                    retry_after=_IN_PROGRESS_RETRY,
                ) from failure
            raise
        finally:
            request_deadline.reset(deadline)

    def _draft(self, bank_id: str, command: IssueCommand) -> IssueDraft:
        """The request as it will be sent and recorded, once its token and checks pass."""
        claims = self._tokens.open_verification(command.verification_token, bank_id)
        self._check_same_person(claims, command.applicant)
        self._check_consent(command.consent)
        self._check_guardian_present(command, claims.civil_capacity)
        return IssueDraft(
            bank_id=bank_id,
            idempotency_key=command.idempotency_key,
            applicant=command.applicant,
            consent=command.consent,
            guardian=command.guardian,
            card_number=claims.card_number,
            holder_token=claims.holder_token,
        )

    async def _settled_attempt(self, bank_id: str, idempotency_key: str) -> IssueAttempt | None:
        try:
            earlier = await self._store.get_issue_attempt(bank_id, idempotency_key)
        except StoreUnavailable as failure:  # the database gone: nothing was sent
            raise _store_failure(maybe_processed=False) from failure
        return earlier if earlier is not None and earlier.state not in _UNSETTLED else None

    async def _run_claimed(
        self, draft: IssueDraft, progress: _Progress, now: datetime
    ) -> IssueResult:
        window = self._forwarding_window(draft.bank_id, now)
        if window is not None and not progress.maybe_processed:
            return await self._accept_for_forwarding(draft, window, now, progress)
        if progress.maybe_processed:
            settled = await self._lookup_and_record(draft, progress)
            if settled is not None:
                return settled
        return await self._issue_claimed(draft, progress)

    def _lease_seconds(self) -> float:
        """How long this request may hold its key: the lease setting, or less when the
        caller's deadline comes first."""
        lease = self._settings.issue_lease.total_seconds()
        deadline = request_deadline.get()
        if deadline is not None:
            lease = max(0.0, min(lease, deadline - self._clock.monotonic()))
        return lease

    async def _claim(
        self, draft: IssueDraft, fingerprint: str, now: datetime, lease: float
    ) -> IssueClaim:
        """Claims the key for `lease` seconds, with the sealed request so that whoever
        settles it later can record the card and consent."""
        claiming = asyncio.ensure_future(
            self._store.claim_issue(
                draft.bank_id,
                draft.idempotency_key,
                fingerprint,
                now,
                lease_until=now + timedelta(seconds=lease),
                draft_sealed=self._vault.seal_draft(draft),
            )
        )
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # The caller left while the claim was being written: it is written even so, and
            # nothing was sent, so the key is free again at once.
            claim = await claiming
            if claim.existing is None:
                progress = _Progress(claim.token, maybe_processed=claim.was_in_doubt)
                await self._leave_claim(draft, progress, None)
            raise

    async def _leave_claim(
        self, draft: IssueDraft, progress: _Progress, failure: BaseException | None
    ) -> bool:
        """After a failure: forget a key the platform cannot have processed; keep every other
        in doubt (never deleted) for a retry or the reconciler to settle. Returns whether the
        platform may have processed it."""
        if isinstance(failure, PlatformError):
            # The retry layer knows best whether an IssueCard attempt reached the platform
            # (an in-doubt read, such as the guardian's check, issued nothing).
            in_doubt = failure.platform is not None and failure.platform.outcome is Outcome.IN_DOUBT
            keep = progress.maybe_processed or (progress.sent and in_doubt)
        elif isinstance(failure, GatewayError) and not isinstance(failure, InternalError):
            # A definite answer (another bank's card, A3; a guardian not verified): nothing
            # was issued for it now, whatever an earlier attempt did.
            keep = progress.maybe_processed
        else:  # cancelled, the store failed, a fault of ours: after IssueCard, maybe issued
            keep = progress.maybe_processed or progress.sent
        if progress.forwarded:
            return keep  # the forwarder keeps it queued
        try:
            if keep:
                await self._store.mark_issue_in_doubt(
                    draft.bank_id, draft.idempotency_key, progress.claim
                )
            else:
                await self._store.release_issue(
                    draft.bank_id, draft.idempotency_key, progress.claim
                )
        except StoreUnavailable:
            # The claim stays PENDING: once its lease runs out it counts as in doubt, and a
            # retry or the reconciler settles it with the platform.
            log.warning("issuance claim left to its lease: the store cannot write")
        return keep

    async def settle(self, attempt: IssueAttempt) -> bool:
        """Settles an attempt in doubt with the platform's operation lookup (the reconciler):
        records the card and consent if the platform issued it, forgets the key if the
        platform never received it. False if it stays in doubt (lookup failed, claimed by a
        request, or nothing to record it with)."""
        if attempt.draft_sealed is None:
            return False
        now = self._clock.now()
        lease = self._settings.issue_lease
        claim = await self._store.claim_issue(
            attempt.bank_id,
            attempt.idempotency_key,
            attempt.fingerprint,
            now,
            lease_until=now + lease,
            draft_sealed=None,
        )
        if claim.existing is not None:
            return False
        draft = self._vault.open_draft(
            attempt.bank_id, attempt.idempotency_key, attempt.draft_sealed, now.date()
        )
        progress = _Progress(claim.token, maybe_processed=True)
        deadline = request_deadline.set(self._clock.monotonic() + lease.total_seconds())
        try:
            settled = await self._lookup_and_record(draft, progress)
            if settled is None:
                # Lookup failed: still in doubt. Never received: nothing was issued, and a
                # retry of the request issues anew.
                await self._leave_claim(draft, progress, None)
                return not progress.maybe_processed
        except BaseException as failure:
            await self._leave_claim(draft, progress, failure)
            if isinstance(failure, GatewayError | StoreError):
                return False
            raise
        finally:
            request_deadline.reset(deadline)
        return True

    async def _lookup_and_record(
        self, draft: IssueDraft, progress: _Progress
    ) -> IssueResult | None:
        """What the platform did with this key's IssueCard, recorded. None when it never got
        it, or when the lookup failed (`progress.maybe_processed` stays set): re-sending
        IssueCard with the same key settles it as well, the platform de-duplicates."""
        try:
            found = await self._platform.lookup_issue(f"{draft.bank_id}:{draft.idempotency_key}")
        except PlatformError:
            return None
        progress.maybe_processed = False  # the platform's state of this key is known now
        if found is None:
            return None
        progress.sent = True  # issued (or refused) by the platform: record it or keep it
        return await self._record_issued(draft, found, progress)

    def _check_same_person(self, claims: VerificationClaims, applicant: Person) -> None:
        vault, bank_id = self._vault, claims.bank_id
        if not (
            vault.is_holder_token(bank_id, claims.holder_token, applicant.citizen_id.value)
            and vault.is_token(bank_id, claims.name_token, "name", applicant.name)
            and vault.is_token(bank_id, claims.phone_token, "phone", applicant.mobile_phone)
        ):
            raise PreconditionFailed(
                "applicant differs from the one verified by this token",
                reason=ErrorReason.VERIFICATION_MISMATCH,
            )

    def _check_consent(self, consent: Consent) -> None:
        """A1: the consent is evidence only if it names a version the bank offers, and was
        given after that version took effect (A12) and shortly before this request."""
        settings, now = self._settings, self._clock.now()
        effective = settings.agreement_versions.get(consent.agreement_version)
        if effective is None:
            raise InvalidRequest(
                [
                    FieldViolation(
                        "consent.agreement_version",
                        "is not a version of the user agreement in force (A12)",
                        "UNKNOWN_AGREEMENT_VERSION",
                    )
                ]
            )
        problem = None
        if consent.accepted_at > now + settings.consent_clock_skew:
            problem = ("lies in the future", "IN_FUTURE")
        elif consent.accepted_at < datetime.combine(effective, time(), CHINA_TIME):
            problem = ("predates the agreement version it accepts (A12)", "BEFORE_VERSION")
        elif consent.accepted_at < now - settings.consent_max_age:
            problem = (
                f"is older than {settings.consent_max_age.days} days before this request",
                "TOO_OLD",
            )
        if problem is not None:
            raise InvalidRequest([FieldViolation("consent.accepted_at", *problem)])

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

    def _fingerprint(self, bank_id: str, command: IssueCommand) -> Fingerprint:
        guardian = command.guardian
        canonical = json.dumps(
            [
                normalise_id_text(command.applicant.citizen_id.value),
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
        return self._vault.fingerprint(bank_id, "issue-request", canonical)

    async def _replay(self, attempt: IssueAttempt, fingerprint: Fingerprint) -> IssueResult:
        if attempt.fingerprint not in fingerprint.any_version:
            raise PreconditionFailed(
                "idempotency key was used for a different request",
                reason=ErrorReason.IDEMPOTENCY_KEY_REUSED,
            )
        if attempt.state is IssueAttemptState.FORWARD_PENDING:
            return IssueResult(IssueOutcome.PENDING, None)
        if attempt.state is IssueAttemptState.FAILED:
            raise forward_failure(attempt.failure_reason)
        if attempt.state is IssueAttemptState.PENDING or attempt.essc_id is None:
            # Most Issues take milliseconds: ask again soon, at most when the lease ends.
            wait = _IN_PROGRESS_RETRY
            if attempt.lease_until is not None:
                wait = min(wait, max(attempt.lease_until - self._clock.now(), _MIN_RETRY))
            raise Conflict(
                "a request with this idempotency key is in progress; retry shortly",
                reason=ErrorReason.REQUEST_IN_PROGRESS,
                retry_after=wait,
            )
        card = await self._store.get_card(attempt.essc_id)
        if card is None:
            raise NotFound("card of this request no longer exists")
        # From what the gateway holds: a replay needs no platform (and works in a window).
        return IssueResult(IssueOutcome.REPLAYED, await self._vault.card_view(card))

    def _forwarding_window(self, bank_id: str, now: datetime) -> MaintenanceWindow | None:
        if bank_id not in self._forwarding_banks:
            return None
        return self._calendar.active("Issue", now)

    async def _accept_for_forwarding(
        self, draft: IssueDraft, window: MaintenanceWindow, now: datetime, progress: _Progress
    ) -> IssueResult:
        """Store-and-forward: durable now, sent to the platform after the window."""
        assert progress.claim is not None, "a request holds its claim"
        await self._store.accept_for_forwarding(
            draft.bank_id,
            draft.idempotency_key,
            self._vault.seal_draft(draft),
            accepted_at=now,
            forward_after=window.ends_at,
            claim=progress.claim,
        )
        return IssueResult(IssueOutcome.PENDING, None, forward_after=window.ends_at)

    async def forward(self, draft: IssueDraft, claim: str) -> IssueResult:
        """Completes an issuance accepted during a maintenance window; `claim`: the
        forwarder's claim on the queue entry."""
        return await self._issue_claimed(draft, _Progress(claim, forwarded=True))

    async def _issue_claimed(self, draft: IssueDraft, progress: _Progress) -> IssueResult:
        bank_id = draft.bank_id
        local = await self._store.active_card_for_holder(draft.holder_token)
        if local is not None:
            return await self._already_held(draft, local.bank_id, local.essc_id, progress)
        if draft.guardian is not None:
            await self._verify_guardian(draft.guardian)
        progress.sent = True  # from here on the platform may have processed it
        issued = await self._platform.issue_card(
            IssueCardCommand(
                idempotency_key=f"{bank_id}:{draft.idempotency_key}",
                bank_id=bank_id,
                id_number=draft.applicant.citizen_id.value,
                name=draft.applicant.name,
                mobile_phone=draft.applicant.mobile_phone,
                # The physical card Verify proved; the platform binds the e-SSC to it.
                card_number=draft.card_number,
                guardian_id_number=draft.guardian.citizen_id.value if draft.guardian else "",
            )
        )
        return await self._record_issued(draft, issued, progress)

    async def _record_issued(
        self, draft: IssueDraft, issued: PlatformIssue, progress: _Progress
    ) -> IssueResult:
        """Records what the platform issued for this draft's key, with its consent (A1)."""
        bank_id = draft.bank_id
        if issued.card.bank_id != bank_id:
            raise AlreadyExists(
                "the holder already has an e-SSC issued through another bank (A3)",
                reason=ErrorReason.CARD_HELD_BY_OTHER_BANK,
            )
        # ISSUED or REPLAYED (an earlier attempt reached the platform but not our store), or
        # ALREADY_HELD with this bank while our record is missing: record it now.
        outcome = (
            IssueOutcome.ALREADY_HELD
            if issued.outcome is IssueOutcome.ALREADY_HELD
            else IssueOutcome.ISSUED
        )
        try:
            await self._store_card(draft, issued.card, outcome, progress)
        except LiveCardConflict:
            # The platform issued this card, yet our records hold another live card of the
            # holder (A3): ours are stale. Keep the key in doubt, never forget it, and let an
            # operator reconcile; the card is the platform's answer, not ours to drop.
            progress.maybe_processed = True
            log.error(
                "issued card not recorded: the holder has another live card in the store "
                "bank=%s key=%s",
                bank_id,
                draft.idempotency_key,
            )
            raise PreconditionFailed(
                "the gateway's card records for this holder disagree with the platform's; "
                "the issuance is kept and an operator must reconcile it",
                reason=ErrorReason.CARD_RECORDS_DISAGREE,
            ) from None
        return IssueResult(outcome, card_view(issued.card, draft.consent.agreement_version))

    async def _store_card(
        self, draft: IssueDraft, card: PlatformCard, outcome: IssueOutcome, progress: _Progress
    ) -> None:
        """The card, sealed under its holder's key (made now for a first card, and stored in
        the same transaction), and the attempt completed."""
        bank_id, holder_token = draft.bank_id, draft.holder_token
        for attempt in range(2):
            holder, new_key = await self._vault.key_for_new_card(
                bank_id, holder_token, self._clock.now(), read=attempt > 0
            )
            record = self._record(draft, card, holder)
            try:
                await self._store.complete_issue(
                    bank_id,
                    draft.idempotency_key,
                    outcome.value,
                    record.essc_id,
                    record,
                    self._clock.now(),
                    progress.claim,
                    new_key,
                    holder.key_id,
                    # What the platform's lookup of this key finds again after a crash.
                    lazy=outcome is IssueOutcome.ISSUED and not progress.forwarded,
                )
            except HolderKeyTaken:  # a request that stored one first, or a key job replaced it
                self._vault.forget_key(bank_id, holder_token)
                continue
            self._vault.remember_key(bank_id, holder_token, holder)
            return
        raise InternalError("the holder's key could not be settled")

    async def _already_held(
        self, draft: IssueDraft, holder_bank: str, essc_id: str, progress: _Progress
    ) -> IssueResult:
        bank_id = draft.bank_id
        if holder_bank != bank_id:
            raise AlreadyExists(
                "the holder already has an e-SSC issued through another bank (A3)",
                reason=ErrorReason.CARD_HELD_BY_OTHER_BANK,
            )
        current = await self._platform.get_card(essc_id)
        local = await self._store.get_card(essc_id)
        version = local.consent_version if local else draft.consent.agreement_version
        await self._store.complete_issue(
            bank_id,
            draft.idempotency_key,
            IssueOutcome.ALREADY_HELD.value,
            essc_id,
            None,
            self._clock.now(),
            progress.claim,
        )
        return IssueResult(IssueOutcome.ALREADY_HELD, card_view(current, version))

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
            # The platform's reason (a code, no personal data) tells a wrong phone given
            # (the applicant's fault, A16(2)) from the rest.
            check_reason = check.result.reason if check is not None else "PERSON_NOT_FOUND"
            if check_reason in ("PERSON_NOT_FOUND", "NAME_MISMATCH"):
                check_reason = "NAME_OR_ID_MISMATCH"  # whether an ID exists is not told
            raise PreconditionFailed(
                "guardian could not be verified as an adult with full civil capacity (A5)",
                reason=ErrorReason.GUARDIAN_NOT_VERIFIED,
                metadata={"check_reason": check_reason or ("NOT_ADULT" if not adult else "")},
            )

    def _record(self, draft: IssueDraft, card: PlatformCard, holder: HolderKey) -> CardRecord:
        essc_id = card.essc_id
        bank_id, applicant = draft.bank_id, draft.applicant

        def seal(essc_id: str, field: str, value: str) -> bytes:
            return self._vault.seal(holder, bank_id, essc_id, field, value)

        return CardRecord(
            essc_id=essc_id,
            bank_id=draft.bank_id,
            holder_token=draft.holder_token,
            name_sealed=seal(essc_id, "name", applicant.name),
            id_number_sealed=seal(essc_id, "id_number", applicant.citizen_id.value),
            phone_sealed=seal(essc_id, "phone", applicant.mobile_phone),
            card_number_sealed=seal(essc_id, "card_number", card.card_number),
            status=card.status.value,
            issued_at=card.issued_at,
            consent_version=draft.consent.agreement_version,
            consent_accepted_at=draft.consent.accepted_at,
            consent_channel=draft.consent.channel.value,
            guardian_sealed=(
                self._vault.seal_guardian(holder, bank_id, essc_id, draft.guardian)
                if draft.guardian
                else None
            ),
            guardian_relation=draft.guardian.relation.value if draft.guardian else None,
        )


def _store_failure(maybe_processed: bool) -> StoreFailure:
    outcome = "IN_DOUBT" if maybe_processed else "NOT_SENT"
    return StoreFailure(
        "the gateway cannot record this issuance now; retry it with the same key",
        metadata={
            "outcome": outcome,
            "platform_reached": "unknown" if maybe_processed else "false",
        },
    )


def forward_failure(reason: str | None) -> PreconditionFailed | AlreadyExists:
    """The error a forwarded issuance ended with, as stored, for replays of its key."""
    code = (
        ErrorReason(reason)
        if reason and reason in ErrorReason.__members__
        else ErrorReason.INTERNAL
    )
    if code is ErrorReason.CARD_HELD_BY_OTHER_BANK:
        return AlreadyExists(
            "the holder already has an e-SSC issued through another bank (A3)", reason=code
        )
    return PreconditionFailed("the platform refused this issuance when forwarded", reason=code)
