"""OperatorService's erasure and disclosure RPCs, protobuf <-> the privacy services (mixed
into the operator servicer). Refusals name fields only, never the values sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from essc.gateway.v1 import operator_pb2 as pb
from essc_gateway.clock import Clock
from essc_gateway.domain.citizen_id import InvalidCitizenIdError, parse_citizen_id
from essc_gateway.errors import FieldViolation, InvalidRequest
from essc_gateway.privacy.disclosure import HolderDisclosure
from essc_gateway.privacy.erasure import HolderErasure
from essc_gateway.privacy.free_text import looks_personal
from essc_gateway.privacy.jobs import ErasureJobs
from essc_gateway.privacy.model import (
    DisclosureGround,
    ErasureGround,
    ErasureJob,
    ErasureJobKind,
)
from essc_gateway.transport.context import calling_operator
from essc_gateway.transport.responses import timestamp

Context = grpc.aio.ServicerContext[Any, Any]

MAX_TEXT = 200

_ERASURE_GROUNDS = {
    pb.ERASURE_GROUND_UNLAWFUL_PROCESSING: ErasureGround.UNLAWFUL_PROCESSING,
    pb.ERASURE_GROUND_NO_CONSENT: ErasureGround.NO_CONSENT,
    pb.ERASURE_GROUND_AGREEMENT_BREACHED: ErasureGround.AGREEMENT_BREACHED,
    pb.ERASURE_GROUND_SERVICE_ENDED_BY_HOLDER: ErasureGround.SERVICE_ENDED_BY_HOLDER,
    pb.ERASURE_GROUND_SERVICE_ENDED_BY_BANK: ErasureGround.SERVICE_ENDED_BY_BANK,
}
_DISCLOSURE_GROUNDS = {
    pb.DISCLOSURE_GROUND_HOLDER_AUTHORISED: DisclosureGround.HOLDER_AUTHORISED,
    pb.DISCLOSURE_GROUND_LAW_OR_REGULATION: DisclosureGround.LAW_OR_REGULATION,
    pb.DISCLOSURE_GROUND_COMPETENT_AUTHORITY: DisclosureGround.COMPETENT_AUTHORITY,
    pb.DISCLOSURE_GROUND_PERSONAL_INFORMATION_STANDARD: (
        DisclosureGround.PERSONAL_INFORMATION_STANDARD
    ),
    pb.DISCLOSURE_GROUND_PUBLIC_INTEREST: DisclosureGround.PUBLIC_INTEREST,
}
_DISCLOSURE_GROUND_PB = {ground: value for value, ground in _DISCLOSURE_GROUNDS.items()}


class _Checked:
    """Collects every bad field of a request, then refuses them together."""

    def __init__(self, banks: frozenset[str], today: datetime) -> None:
        self._banks = banks
        self._today = today.date()
        self.violations: list[FieldViolation] = []

    def bank(self, bank_id: str) -> str:
        if bank_id not in self._banks:
            self.violations.append(FieldViolation("bank_id", "is not a configured bank", "UNKNOWN"))
        return bank_id

    def id_number(self, value: str) -> str:
        try:
            return parse_citizen_id(value, self._today).value
        except InvalidCitizenIdError as error:
            self.violations.append(
                FieldViolation("social_security_number", error.description, error.problem.value)
            )
            return ""

    def text(self, field: str, value: str) -> str:
        value = value.strip()
        if not value:
            self.violations.append(FieldViolation(field, "is required", "REQUIRED"))
        elif len(value) > MAX_TEXT:
            self.violations.append(
                FieldViolation(field, f"must be at most {MAX_TEXT} characters", "TOO_LONG")
            )
        elif looks_personal(value):  # it goes into evidence that no erasure reaches
            self.violations.append(
                FieldViolation(
                    field,
                    "must not hold an ID, phone or card number: it is kept in evidence "
                    "that cannot be erased",
                    "PERSONAL_DATA",
                )
            )
        return value

    def ground(self, field: str, known: bool) -> None:
        if not known:
            self.violations.append(
                FieldViolation(field, "must be one of the grounds", "UNSPECIFIED")
            )

    def done(self) -> None:
        if self.violations:
            raise InvalidRequest(self.violations)


@dataclass(frozen=True, slots=True)
class PrivacyServices:
    erasure: HolderErasure
    disclosure: HolderDisclosure
    jobs: ErasureJobs
    banks: frozenset[str]
    clock: Clock


_JOB_KIND_PB = {
    ErasureJobKind.BANK_STOPPED: pb.ERASURE_JOB_KIND_BANK_STOPPED,
    ErasureJobKind.RETENTION: pb.ERASURE_JOB_KIND_RETENTION,
}


def _job_pb(job: ErasureJob) -> pb.ErasureJob:
    message = pb.ErasureJob(
        job_id=job.job_id,
        kind=_JOB_KIND_PB[job.kind],
        bank_id=job.bank_id,
        reference=job.reference,
        operator_id=job.operator,
        started_at=timestamp(job.started_at),
        erased=job.erased,
        waiting=job.waiting,
    )
    if job.finished_at is not None:
        message.finished_at.CopyFrom(timestamp(job.finished_at))
    return message


class PrivacyRpcs:
    def __init__(self, services: PrivacyServices) -> None:
        self._privacy = services

    def _checked(self) -> _Checked:
        # ID numbers are judged on today's date (a birth date in the future is refused).
        return _Checked(self._privacy.banks, self._privacy.clock.now())

    async def EraseHolder(
        self, request: pb.EraseHolderRequest, context: Context
    ) -> pb.EraseHolderResponse:
        check = self._checked()
        bank_id = check.bank(request.bank_id)
        id_number = check.id_number(request.social_security_number)
        ground = _ERASURE_GROUNDS.get(request.ground)
        check.ground("ground", ground is not None)
        reference = check.text("reference", request.reference)
        check.done()
        assert ground is not None
        erased = await self._privacy.erasure.erase(
            bank_id, id_number, ground, reference, calling_operator()
        )
        return pb.EraseHolderResponse(
            erasure_id=erased.erasure_id,
            erased_at=timestamp(erased.at),
            cards_erased=erased.counts.cards,
            records_unlinked=erased.counts.records_unlinked,
            live_cards_erased=erased.counts.live_cards,
            records_under_lookup_token=erased.counts.records_under_lookup_token,
            lookup_versions_to_destroy=erased.counts.lookup_versions,
        )

    async def DiscloseHolder(
        self, request: pb.DiscloseHolderRequest, context: Context
    ) -> pb.DiscloseHolderResponse:
        check = self._checked()
        bank_id = check.bank(request.bank_id)
        id_number = check.id_number(request.social_security_number)
        recipient = check.text("recipient", request.recipient)
        ground = _DISCLOSURE_GROUNDS.get(request.ground)
        check.ground("ground", ground is not None)
        reference = check.text("reference", request.reference)
        check.done()
        assert ground is not None
        disclosure, cards = await self._privacy.disclosure.disclose(
            bank_id, id_number, recipient, ground, reference, calling_operator()
        )
        return pb.DiscloseHolderResponse(
            disclosure_id=disclosure.disclosure_id,
            disclosed_at=timestamp(disclosure.at),
            cards=[
                pb.DisclosedCard(
                    essc_id=d.card.essc_id,
                    status=d.card.status,
                    name=d.fields["name"],
                    social_security_number=d.fields["id_number"],
                    mobile_phone=d.fields["mobile_phone"],
                    card_number=d.fields["card_number"],
                    issued_at=timestamp(d.card.issued_at),
                    consent_version=d.card.consent_version,
                    guardian_name=d.fields.get("guardian_name", ""),
                    guardian_social_security_number=d.fields.get("guardian_id_number", ""),
                    guardian_mobile_phone=d.fields.get("guardian_mobile_phone", ""),
                )
                for d in cards
            ],
        )

    async def ListDisclosures(
        self, request: pb.ListDisclosuresRequest, context: Context
    ) -> pb.ListDisclosuresResponse:
        check = self._checked()
        bank_id = check.bank(request.bank_id)
        id_number = check.id_number(request.social_security_number)
        check.done()
        history = await self._privacy.disclosure.history(bank_id, id_number)
        return pb.ListDisclosuresResponse(
            disclosures=[
                pb.DisclosureRecord(
                    disclosure_id=d.disclosure_id,
                    recipient=d.recipient,
                    ground=_DISCLOSURE_GROUND_PB[d.ground],
                    reference=d.reference,
                    fields=list(d.fields),
                    operator_id=d.operator,
                    at=timestamp(d.at),
                )
                for d in history
            ]
        )

    async def EraseBank(
        self, request: pb.EraseBankRequest, context: Context
    ) -> pb.EraseBankResponse:
        check = self._checked()
        bank_id = check.bank(request.bank_id)
        reference = check.text("reference", request.reference)
        check.done()
        job = await self._privacy.jobs.erase_bank(bank_id, reference, calling_operator())
        return pb.EraseBankResponse(job=_job_pb(job))

    async def ListErasureJobs(
        self, request: pb.ListErasureJobsRequest, context: Context
    ) -> pb.ListErasureJobsResponse:
        return pb.ListErasureJobsResponse(
            jobs=[_job_pb(job) for job in await self._privacy.jobs.jobs()]
        )
