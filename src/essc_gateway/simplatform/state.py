"""The simulated platform's mutable state and rules, in plain Python (no gRPC types).

Every method runs to completion without awaiting, so under asyncio each one is atomic.

Errors (messages never contain personal data)::

    PlatformStateError
    ├── NotFoundError       no such person or e-SSC
    ├── PreconditionError   the request contradicts the register or the card's state
    └── ForbiddenError      a bank acting on another bank's e-SSC
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import random
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from essc_gateway.clock import Clock
from essc_gateway.domain.citizen_id import mask_id
from essc_gateway.simplatform.population import (
    CivilCapacityName,
    Person,
    Population,
    biometric_matches,
    initial_password,
    new_card_number,
)

# A simulator: enough scrypt to never hold a password in clear, cheap enough for tests.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**10, 8, 1


class PlatformStateError(Exception):
    """Root of the state's errors; the message is safe to send and to log.

    `reason` is a stable code (the ErrorInfo reason of the platform's answer).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotFoundError(PlatformStateError):
    pass


class PreconditionError(PlatformStateError):
    pass


class ForbiddenError(PlatformStateError):
    pass


_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


class CardStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    LOST_CONTINUED_USE = "LOST_CONTINUED_USE"
    TERMINATED = "TERMINATED"


class IssueOutcome(StrEnum):
    ISSUED = "ISSUED"
    REPLAYED = "REPLAYED"
    ALREADY_HELD = "ALREADY_HELD"


@dataclass(frozen=True, slots=True)
class Card:
    """An e-SSC as the platform holds it. Replaced, never mutated."""

    essc_id: str
    bank_id: str
    id_number: str
    card_number: str
    status: CardStatus
    issued_at: datetime
    terminated_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"Card(essc_id={self.essc_id}, bank_id={self.bank_id}, "
            f"holder={mask_id(self.id_number)}, status={self.status})"
        )


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """Result of a real-name/card/person check; `reason` is a stable code when not passed."""

    passed: bool
    reason: str = ""
    civil_capacity: CivilCapacityName | None = None


@dataclass(frozen=True, slots=True)
class IssueResult:
    outcome: IssueOutcome
    card: Card


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    matched: bool
    is_initial: bool


@dataclass(frozen=True, slots=True)
class PasswordChange:
    changed: bool
    reason: str = ""
    changed_at: datetime | None = None


OperationResult = IssueResult | Card | PasswordChange
"""The answer to a keyed write: an issue, a termination (the card) or a password change."""


@dataclass(frozen=True, slots=True)
class SmsCheck:
    matched: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SmsMessage:
    code: str
    purpose: str
    sent_at: datetime

    def __repr__(self) -> str:
        return f"SmsMessage(purpose={self.purpose!r}, sent_at={self.sent_at.isoformat()})"


@dataclass(frozen=True, slots=True)
class _PasswordRecord:
    salt: bytes
    digest: bytes
    is_initial: bool


@dataclass(frozen=True, slots=True)
class _SmsCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _KeyUse:
    """What an idempotency key was first used for: a replay must be the same request.

    `fingerprint` covers every field that matters (see `_fingerprint`), never in clear.
    """

    fingerprint: bytes
    target: str = ""
    at: datetime | None = None

    def same_request(self, fingerprint: bytes) -> bool:
        return hmac.compare_digest(self.fingerprint, fingerprint)


@dataclass(slots=True)
class _Registers:
    cards: dict[str, Card] = field(default_factory=dict)  # essc_id -> card
    held: dict[str, str] = field(default_factory=dict)  # id_number -> non-terminated essc_id
    issue_keys: dict[str, _KeyUse] = field(default_factory=dict)  # target: essc_id
    terminate_keys: dict[str, _KeyUse] = field(default_factory=dict)  # target: essc_id
    password_keys: dict[str, _KeyUse] = field(default_factory=dict)  # at: changed_at
    card_numbers: dict[str, str] = field(default_factory=dict)  # id_number -> replacement
    used_card_numbers: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)  # id_numbers whose physical card is lost
    passwords: dict[str, _PasswordRecord] = field(default_factory=dict)
    sms_codes: dict[tuple[str, str], _SmsCode] = field(default_factory=dict)
    # (id_number, purpose) -> times of wrong tries in the last TTL, whichever code they aimed at.
    sms_failures: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    inboxes: dict[str, list[SmsMessage]] = field(default_factory=dict)  # E.164 -> messages
    # idempotency key -> the answer to the write first committed under it (snapshot).
    operations: dict[str, OperationResult] = field(default_factory=dict)


class PlatformState:
    """The national platform's register, e-SSCs, passwords and SMS codes, in memory."""

    def __init__(
        self,
        population: Population,
        *,
        clock: Clock,
        rng: random.Random,
        sms_code_ttl: timedelta = timedelta(minutes=5),
        sms_max_attempts: int = 3,
    ) -> None:
        if sms_code_ttl <= timedelta(0) or sms_max_attempts < 1:
            raise ValueError("sms_code_ttl must be positive and sms_max_attempts at least 1")
        self.population = population
        self._clock = clock
        self._rng = rng
        self._sms_code_ttl = sms_code_ttl
        self._sms_max_attempts = sms_max_attempts
        self._r = _Registers(used_card_numbers={p.card_number for p in population.people})

    def snapshot(self) -> bytes:
        """Everything the platform has recorded since it started (cards, passwords, keys,
        SMS), for a development run to keep across restarts (`persistence.py`)."""
        return pickle.dumps(self._r, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, snapshot: bytes) -> int:
        """Takes back a `snapshot` of this population; returns how many cards it holds."""
        registers = pickle.loads(snapshot)  # noqa: S301 - our own file, checked by the caller
        if not isinstance(registers, _Registers):
            raise ValueError("not a snapshot of the simulated platform")
        self._r = registers
        return len(registers.cards)

    # --- register -------------------------------------------------------------------------

    def person(self, id_number: str) -> Person:
        """Raises NotFoundError for an ID the register does not know."""
        person = self.population.by_id(id_number)
        if person is None:
            raise NotFoundError("person not found", "PERSON_NOT_FOUND")
        return person

    def current_card_number(self, id_number: str) -> str:
        """The person's physical card number now (it changes on replacement, A6)."""
        person = self.person(id_number)
        return self._r.card_numbers.get(id_number, person.card_number)

    def is_card_lost(self, id_number: str) -> bool:
        return id_number in self._r.lost

    # --- real name, real card, real person (A2) -------------------------------------------

    def check_real_name(self, name: str, id_number: str, mobile_phone: str) -> CheckOutcome:
        person = self.population.by_id(id_number)
        if person is None:
            return CheckOutcome(passed=False, reason="PERSON_NOT_FOUND")
        capacity = person.civil_capacity
        if not _same_name(name, person.name):
            return CheckOutcome(passed=False, reason="NAME_MISMATCH", civil_capacity=capacity)
        if mobile_phone != person.mobile_phone:
            return CheckOutcome(passed=False, reason="PHONE_MISMATCH", civil_capacity=capacity)
        return CheckOutcome(passed=True, civil_capacity=capacity)

    def check_real_card(self, id_number: str, card_number: str) -> CheckOutcome:
        if self.population.by_id(id_number) is None:
            return CheckOutcome(passed=False, reason="PERSON_NOT_FOUND")
        if card_number != self.current_card_number(id_number):
            return CheckOutcome(passed=False, reason="CARD_NUMBER_MISMATCH")
        if self.is_card_lost(id_number):
            return CheckOutcome(passed=False, reason="CARD_REPORTED_LOST")
        return CheckOutcome(passed=True)

    def check_real_person(self, id_number: str, sample: bytes) -> CheckOutcome:
        person = self.population.by_id(id_number)
        if person is None:
            return CheckOutcome(passed=False, reason="PERSON_NOT_FOUND")
        if not biometric_matches(person.biometric_template, sample):
            return CheckOutcome(passed=False, reason="BIOMETRIC_MISMATCH")
        return CheckOutcome(passed=True)

    # --- e-SSC lifecycle ------------------------------------------------------------------

    def issue_card(
        self,
        *,
        idempotency_key: str,
        bank_id: str,
        id_number: str,
        name: str,
        mobile_phone: str,
        card_number: str,
        guardian_id_number: str = "",
    ) -> IssueResult:
        """Issues an e-SSC: one person, one e-SSC (A3); a key replays its first result."""
        fingerprint = _fingerprint(
            "IssueCard",
            idempotency_key,
            bank_id,
            id_number,
            _normal_name(name),
            mobile_phone,
            card_number,
            guardian_id_number,
        )
        used = self._r.issue_keys.get(idempotency_key)
        if used is not None:
            # Only the identical request replays: a changed card number or guardian must not
            # be answered with an e-SSC that was never checked against it.
            if not used.same_request(fingerprint):
                raise PreconditionError(
                    "idempotency key already used for another request", _KEY_REUSED
                )
            return IssueResult(IssueOutcome.REPLAYED, self._r.cards[used.target])
        person = self.person(id_number)
        # The gateway verified first (A2): a mismatch here is a real one, not a typo to report.
        if (
            not _same_name(name, person.name)
            or mobile_phone != person.mobile_phone
            or card_number != self.current_card_number(id_number)
        ):
            raise PreconditionError("applicant does not match the register", "IDENTITY_MISMATCH")
        if guardian_id_number:
            self._check_guardian(guardian_id_number, id_number)
        held = self._r.held.get(id_number)
        if held is not None:
            return IssueResult(IssueOutcome.ALREADY_HELD, self._r.cards[held])  # A3
        card = Card(
            essc_id=self._new_essc_id(),
            bank_id=bank_id,
            id_number=id_number,
            card_number=card_number,
            # A6: a lost physical card means a suspended e-SSC until use is authorised.
            status=CardStatus.SUSPENDED if self.is_card_lost(id_number) else CardStatus.ACTIVE,
            issued_at=self._clock.now(),
        )
        self._r.cards[card.essc_id] = card
        self._r.held[id_number] = card.essc_id
        self._r.issue_keys[idempotency_key] = _KeyUse(fingerprint, target=card.essc_id)
        result = IssueResult(IssueOutcome.ISSUED, card)
        self._r.operations.setdefault(idempotency_key, result)
        return result

    def get_card(self, essc_id: str) -> Card:
        card = self._r.cards.get(essc_id)
        if card is None:
            raise NotFoundError("e-SSC not found", "CARD_NOT_FOUND")
        return card

    def report_card_lost(self, id_number: str) -> None:
        """The physical card is lost: an ACTIVE e-SSC is suspended (A6)."""
        self.person(id_number)
        self._r.lost.add(id_number)
        card = self._held_card(id_number)
        if card is not None and card.status is CardStatus.ACTIVE:
            self._store(replace(card, status=CardStatus.SUSPENDED))

    def authorize_continued_use(self, essc_id: str) -> Card:
        """The holder authorises use while the physical card is lost (A6); idempotent."""
        card = self.get_card(essc_id)
        if card.status is CardStatus.LOST_CONTINUED_USE:
            return card
        if card.status is not CardStatus.SUSPENDED:
            raise PreconditionError(
                f"e-SSC is {card.status.value}, not SUSPENDED", "CARD_NOT_SUSPENDED"
            )
        return self._store(replace(card, status=CardStatus.LOST_CONTINUED_USE))

    def replace_card(self, id_number: str) -> str:
        """New physical card: the e-SSC follows it, same essc_id, no re-issue (A6)."""
        self.person(id_number)
        number = new_card_number(self._rng, self._r.used_card_numbers)
        self._r.card_numbers[id_number] = number
        self._r.lost.discard(id_number)
        card = self._held_card(id_number)
        if card is not None:
            self._store(replace(card, card_number=number, status=CardStatus.ACTIVE))
        return number

    def terminate_card(self, essc_id: str, bank_id: str, idempotency_key: str) -> Card:
        """Ends the e-SSC for its issuing bank; repeating it returns the terminated card."""
        card = self.get_card(essc_id)
        if card.bank_id != bank_id:
            raise ForbiddenError(
                "only the issuing bank may terminate this e-SSC", "CARD_HELD_BY_OTHER_BANK"
            )
        fingerprint = _fingerprint("TerminateCard", idempotency_key, essc_id, bank_id)
        used = self._r.terminate_keys.get(idempotency_key)
        if used is not None and not used.same_request(fingerprint):
            raise PreconditionError("idempotency key already used for another request", _KEY_REUSED)
        if card.status is CardStatus.TERMINATED:
            return card
        card = self._store(
            replace(card, status=CardStatus.TERMINATED, terminated_at=self._clock.now())
        )
        # The person may be issued a new e-SSC later (with a new essc_id).
        self._r.held.pop(card.id_number, None)
        self._r.terminate_keys[idempotency_key] = _KeyUse(fingerprint, target=essc_id)
        self._r.operations.setdefault(idempotency_key, card)
        return card

    # --- password (K1, K3) ----------------------------------------------------------------

    def verify_password(self, id_number: str, password: str) -> PasswordCheck:
        self.person(id_number)
        record = self._r.passwords.get(id_number)
        if record is None:
            matched = _equal(password, initial_password(id_number))  # K1
            return PasswordCheck(matched=matched, is_initial=matched)
        matched = hmac.compare_digest(_hash(password, record.salt), record.digest)
        return PasswordCheck(matched=matched, is_initial=matched and record.is_initial)

    def change_password(
        self, id_number: str, current: str, new: str, idempotency_key: str
    ) -> PasswordChange:
        """Stores a new password as a salted hash; strength rules are the gateway's (K3)."""
        self.person(id_number)
        fingerprint = _fingerprint("ChangePassword", idempotency_key, id_number, current, new)
        used = self._r.password_keys.get(idempotency_key)
        if used is not None:
            # A replay is answered only if it is the very same request: otherwise a known key
            # would turn any guess at the current password into a success.
            if not used.same_request(fingerprint):
                raise PreconditionError(
                    "idempotency key already used for another request", _KEY_REUSED
                )
            return PasswordChange(changed=True, changed_at=used.at)
        if not self.verify_password(id_number, current).matched:
            return PasswordChange(changed=False, reason="WRONG_CURRENT_PASSWORD")
        # Seeded salts keep runs reproducible; a real platform would use secrets.token_bytes.
        salt = self._rng.randbytes(16)
        self._r.passwords[id_number] = _PasswordRecord(
            salt=salt,
            digest=_hash(new, salt),
            is_initial=_equal(new, initial_password(id_number)),
        )
        changed_at = self._clock.now()
        self._r.password_keys[idempotency_key] = _KeyUse(fingerprint, at=changed_at)
        change = PasswordChange(changed=True, changed_at=changed_at)
        self._r.operations.setdefault(idempotency_key, change)
        return change

    # --- SMS codes (A7, A8) ---------------------------------------------------------------

    def send_sms_code(self, id_number: str, purpose: str) -> datetime:
        """Sends a fresh 6-digit code (replacing any earlier one); returns its expiry.

        A new code does not reset the wrong tries: those count per person and purpose.
        """
        person = self.person(id_number)
        now = self._clock.now()
        code = f"{self._rng.randrange(10**6):06d}"
        expires_at = now + self._sms_code_ttl
        self._r.sms_codes[(id_number, purpose)] = _SmsCode(code=code, expires_at=expires_at)
        inbox = self._r.inboxes.setdefault(person.mobile_phone, [])
        inbox.append(SmsMessage(code=code, purpose=purpose, sent_at=now))
        return expires_at

    def verify_sms_code(self, id_number: str, code: str, purpose: str) -> SmsCheck:
        """Single use; a code only verifies for its purpose.

        At most `sms_max_attempts` wrong tries per person and purpose in any `sms_code_ttl`
        (a sliding window), however many codes are sent: asking for a new code must not
        buy more guesses. Past the cap, TOO_MANY_ATTEMPTS until the oldest try is a TTL old.
        """
        self.person(id_number)
        key = (id_number, purpose)
        sent = self._r.sms_codes.get(key)
        if sent is None:
            return SmsCheck(matched=False, reason="NO_CODE_SENT")
        now = self._clock.now()
        if now >= sent.expires_at:
            return SmsCheck(matched=False, reason="CODE_EXPIRED")
        failures = self._recent_sms_failures(key, now)
        if len(failures) >= self._sms_max_attempts:
            return SmsCheck(matched=False, reason="TOO_MANY_ATTEMPTS")
        if not _equal(code, sent.code):
            failures.append(now)
            self._r.sms_failures[key] = failures
            return SmsCheck(matched=False, reason="CODE_MISMATCH")
        # The holder proved they read the phone: earlier wrong tries no longer count.
        del self._r.sms_codes[key]
        self._r.sms_failures.pop(key, None)
        return SmsCheck(matched=True)

    def sms_inbox(self, mobile_phone: str) -> list[SmsMessage]:
        """Messages sent to an E.164 number, oldest first (test surface)."""
        return list(self._r.inboxes.get(mobile_phone, ()))

    # --- biometrics -----------------------------------------------------------------------

    def verify_biometric(self, id_number: str, sample: bytes) -> bool:
        return biometric_matches(self.person(id_number).biometric_template, sample)

    # --- in-doubt writes ------------------------------------------------------------------

    def operation(self, idempotency_key: str) -> OperationResult | None:
        """The answer to the write committed under this key, as it was first given.

        Only committed writes are recorded (an issue, a termination, a password change):
        a caller who lost the answer asks here before re-sending.
        """
        return self._r.operations.get(idempotency_key)

    # --- internals ------------------------------------------------------------------------

    def _check_guardian(self, guardian_id_number: str, id_number: str) -> None:
        # A5: the guardian is someone else, known to the register, with full capacity.
        guardian = self.population.by_id(guardian_id_number)
        if guardian_id_number == id_number or guardian is None:
            raise PreconditionError(
                "guardian is not a known person other than the applicant", "GUARDIAN_NOT_ELIGIBLE"
            )
        if guardian.civil_capacity != "FULL":
            raise PreconditionError(
                "guardian does not have full civil capacity", "GUARDIAN_NOT_ELIGIBLE"
            )

    def _recent_sms_failures(self, key: tuple[str, str], now: datetime) -> list[datetime]:
        """The wrong tries of the last TTL, oldest first; older ones are forgotten."""
        since = now - self._sms_code_ttl
        recent = [at for at in self._r.sms_failures.get(key, ()) if at > since]
        if recent:
            self._r.sms_failures[key] = recent
        else:
            self._r.sms_failures.pop(key, None)
        return recent

    def _held_card(self, id_number: str) -> Card | None:
        essc_id = self._r.held.get(id_number)
        return None if essc_id is None else self._r.cards[essc_id]

    def _store(self, card: Card) -> Card:
        self._r.cards[card.essc_id] = card
        return card

    def _new_essc_id(self) -> str:
        while True:
            essc_id = f"E{self._rng.getrandbits(80):020X}"
            if essc_id not in self._r.cards:
                return essc_id


def _normal_name(name: str) -> str:
    return unicodedata.normalize("NFC", name.strip())


def _same_name(given: str, registered: str) -> bool:
    return _normal_name(given) == registered


def _fingerprint(operation: str, *fields: str) -> bytes:
    """SHA-256 of a keyed write's fields, so a replay can be compared without keeping them.

    Each field is length-prefixed, so that no two different requests hash the same input.
    """
    digest = hashlib.sha256()
    for value in (operation, *fields):
        encoded = value.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.digest()


def _equal(given: str, expected: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a request may carry anything.
    return hmac.compare_digest(given.encode(), expected.encode())


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
