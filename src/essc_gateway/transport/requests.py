"""Protobuf requests -> validated domain values. Every bad field is collected, then reported
at once as INVALID_ARGUMENT with one BadRequest violation per field; never echoes a value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.domain.citizen_id import CitizenId, InvalidCitizenIdError, parse_citizen_id
from essc_gateway.domain.models import (
    Consent,
    ConsentChannel,
    Guardian,
    GuardianRelation,
    Person,
    Scenario,
)
from essc_gateway.domain.names import name_problem, normalise_name
from essc_gateway.domain.phone import InvalidPhoneError, parse_mobile
from essc_gateway.errors import FieldViolation, InvalidRequest

E = TypeVar("E")

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CARD_NUMBER = re.compile(r"[A-Z][0-9]{8}")
MAX_BIOMETRIC_BYTES = 64 * 1024
MAX_SECRET_LENGTH = 64
MAX_TOKEN_LENGTH = 4096

_CHANNELS = {
    pb.CONSENT_CHANNEL_MOBILE_APP: ConsentChannel.MOBILE_APP,
    pb.CONSENT_CHANNEL_ONLINE_BANKING: ConsentChannel.ONLINE_BANKING,
    pb.CONSENT_CHANNEL_BRANCH_COUNTER: ConsentChannel.BRANCH_COUNTER,
    pb.CONSENT_CHANNEL_SELF_SERVICE_TERMINAL: ConsentChannel.SELF_SERVICE_TERMINAL,
}
_RELATIONS = {
    pb.GUARDIAN_RELATION_PARENT: GuardianRelation.PARENT,
    pb.GUARDIAN_RELATION_LEGAL_GUARDIAN: GuardianRelation.LEGAL_GUARDIAN,
    pb.GUARDIAN_RELATION_APPOINTED_GUARDIAN: GuardianRelation.APPOINTED_GUARDIAN,
}
SCENARIOS = {
    pb.BUSINESS_SCENARIO_VIEW_CARD: Scenario.VIEW_CARD,
    pb.BUSINESS_SCENARIO_QUERY_RECORDS: Scenario.QUERY_RECORDS,
    pb.BUSINESS_SCENARIO_MEDICAL_SETTLEMENT: Scenario.MEDICAL_SETTLEMENT,
    pb.BUSINESS_SCENARIO_PAYMENT: Scenario.PAYMENT,
    pb.BUSINESS_SCENARIO_CARD_LOSS: Scenario.CARD_LOSS,
    pb.BUSINESS_SCENARIO_UNBIND: Scenario.UNBIND,
}


# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31, nanos within a second.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def timestamp_in_range(value: Timestamp) -> bool:
    return _MIN_SECONDS <= value.seconds <= _MAX_SECONDS and 0 <= value.nanos < 1_000_000_000


class Fields:
    """Collects violations while converting one request."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.violations: list[FieldViolation] = []

    def bad(self, field: str, description: str, code: str = "INVALID") -> None:
        self.violations.append(FieldViolation(field, description, code))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidRequest(self.violations)

    def citizen_id(self, field: str, raw: str) -> CitizenId | None:
        if not raw:
            self.bad(field, "is required", "REQUIRED")
            return None
        try:
            return parse_citizen_id(raw, self.today)
        except InvalidCitizenIdError as error:
            self.bad(field, error.description, error.problem.value)
            return None

    def phone(self, field: str, raw: str) -> str | None:
        if not raw:
            self.bad(field, "is required", "REQUIRED")
            return None
        try:
            return parse_mobile(raw)
        except InvalidPhoneError as error:
            self.bad(field, error.description, error.problem.value)
            return None

    def name(self, field: str, raw: str) -> str | None:
        name = normalise_name(raw)  # before validating: NFD and other dots are the same name
        problem = name_problem(name)
        if problem is not None:
            self.bad(field, problem, "REQUIRED" if not name else "INVALID_NAME")
            return None
        return name

    def enum(self, field: str, value: int, table: Mapping[Any, E]) -> E | None:
        if value not in table:
            self.bad(field, "must be one of the defined values", "UNSPECIFIED")
            return None
        return table[value]

    def idempotency_key(self, field: str, raw: str) -> str:
        if not _IDEMPOTENCY_KEY.fullmatch(raw):
            self.bad(field, "must be 8-64 characters of A-Z a-z 0-9 _ -", "BAD_IDEMPOTENCY_KEY")
        return raw

    def secret(self, field: str, raw: str) -> str:
        if not raw:
            self.bad(field, "is required", "REQUIRED")
        elif len(raw) > MAX_SECRET_LENGTH:
            self.bad(field, f"must be at most {MAX_SECRET_LENGTH} characters", "TOO_LONG")
        return raw

    def when(self, field: str, value: Timestamp) -> datetime | None:
        if not timestamp_in_range(value):
            self.bad(field, "is not a valid timestamp", "OUT_OF_RANGE")
            return None
        return value.ToDatetime(tzinfo=UTC)

    def token(self, field: str, raw: str) -> str:
        if not raw:
            self.bad(field, "is required", "REQUIRED")
        elif len(raw) > MAX_TOKEN_LENGTH:
            self.bad(field, "is not a token issued by this gateway", "MALFORMED")
        return raw

    def biometric(self, field: str, raw: bytes) -> bytes:
        if not raw:
            self.bad(field, "is required", "REQUIRED")
        elif len(raw) > MAX_BIOMETRIC_BYTES:
            self.bad(field, f"must be at most {MAX_BIOMETRIC_BYTES} bytes", "TOO_LONG")
        return raw

    def person(self, prefix: str, identity: pb.Identity, present: bool) -> Person | None:
        if not present:
            self.bad(prefix, "is required", "REQUIRED")
            return None
        name = self.name(f"{prefix}.name", identity.name)
        citizen = self.citizen_id(
            f"{prefix}.social_security_number", identity.social_security_number
        )
        phone = self.phone(f"{prefix}.mobile_phone", identity.mobile_phone)
        if name is None or citizen is None or phone is None:
            return None
        return Person(name=name, citizen_id=citizen, mobile_phone=phone)


def verify_request(request: pb.VerifyRequest, today: date) -> tuple[Person, str, bytes]:
    fields = Fields(today)
    person = fields.person("applicant", request.applicant, request.HasField("applicant"))
    card_number = request.physical_card_number.strip().upper()
    if not _CARD_NUMBER.fullmatch(card_number):
        fields.bad(
            "physical_card_number", "must be a letter and 8 digits, e.g. K12345678", "BAD_FORMAT"
        )
    sample = fields.biometric("biometric_sample", request.biometric_sample)
    fields.raise_if_any()
    assert person is not None
    return person, card_number, sample


def _consent(fields: Fields, request: pb.IssueRequest) -> Consent | None:
    if not request.HasField("consent"):
        fields.bad(
            "consent",
            "is required: the applicant must accept the agreement (A1)",
            "CONSENT_MISSING",
        )
        return None
    consent = request.consent
    # A1: binding only after ticking "read and agree" and pressing "agree and authorize".
    if not consent.read_and_agreed:
        fields.bad("consent.read_and_agreed", "must be true (A1)", "CONSENT_NOT_GIVEN")
    if not consent.authorized:
        fields.bad("consent.authorized", "must be true (A1)", "CONSENT_NOT_GIVEN")
    if not consent.agreement_version.strip():
        fields.bad("consent.agreement_version", "is required", "REQUIRED")
    accepted_at = None
    if not consent.HasField("accepted_at"):
        fields.bad("consent.accepted_at", "is required", "REQUIRED")
    else:
        accepted_at = fields.when("consent.accepted_at", consent.accepted_at)
    channel = fields.enum("consent.channel", consent.channel, _CHANNELS)
    if fields.violations or channel is None or accepted_at is None:
        return None
    return Consent(
        agreement_version=consent.agreement_version.strip(),
        accepted_at=accepted_at,
        channel=channel,
    )


def _guardian(fields: Fields, request: pb.IssueRequest) -> Guardian | None:
    if not request.HasField("guardian"):
        return None
    raw = request.guardian
    name = fields.name("guardian.name", raw.name)
    citizen = fields.citizen_id("guardian.social_security_number", raw.social_security_number)
    phone = fields.phone("guardian.mobile_phone", raw.mobile_phone)
    relation = fields.enum("guardian.relation", raw.relation, _RELATIONS)
    if not raw.consents:
        fields.bad(
            "guardian.consents", "must be true: the guardian consents (A5)", "CONSENT_NOT_GIVEN"
        )
    if name is None or citizen is None or phone is None or relation is None:
        return None
    return Guardian(name=name, citizen_id=citizen, mobile_phone=phone, relation=relation)


def issue_request(
    request: pb.IssueRequest, today: date
) -> tuple[Person, str, Consent, str, Guardian | None]:
    fields = Fields(today)
    person = fields.person("applicant", request.applicant, request.HasField("applicant"))
    if not request.verification_token:
        fields.bad("verification_token", "is required: call Verify first (A2)", "REQUIRED")
    consent = _consent(fields, request)
    key = fields.idempotency_key("idempotency_key", request.idempotency_key)
    guardian = _guardian(fields, request)
    fields.raise_if_any()
    assert person is not None
    assert consent is not None
    return person, request.verification_token, consent, key, guardian


def holder_and_scenario(
    raw_id: str, raw_scenario: int, today: date
) -> tuple[Fields, CitizenId | None, Scenario | None]:
    fields = Fields(today)
    holder = fields.citizen_id("social_security_number", raw_id)
    scenario = fields.enum("scenario", raw_scenario, SCENARIOS)
    return fields, holder, scenario


def holder_id_of(request: object) -> str | None:
    """The holder's ID number a request is about, as sent (for the liability ledger's keyed
    complaint lookup; never logged)."""
    direct = getattr(request, "social_security_number", None)
    if isinstance(direct, str) and direct:
        return direct
    applicant = getattr(request, "applicant", None)
    nested = getattr(applicant, "social_security_number", None)
    return nested if isinstance(nested, str) and nested else None


def auth_token_of(request: object) -> str | None:
    """The auth token a request carries (Query, ChangePassword...), if any."""
    token = getattr(request, "auth_token", None)
    return token if isinstance(token, str) and token else None
