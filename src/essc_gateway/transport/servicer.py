"""GatewayService: protobuf in, domain call, protobuf out. Nothing else lives here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import grpc

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc as pb_grpc
from essc_gateway.clock import Clock
from essc_gateway.domain.models import IssueStatus
from essc_gateway.service.authentication import AuthenticationService, FactorInput
from essc_gateway.service.cards import CardService
from essc_gateway.service.issuance import IssuanceService, IssueCommand
from essc_gateway.service.verification import VerificationService
from essc_gateway.transport import requests, responses
from essc_gateway.transport.context import calling_bank

Context = grpc.aio.ServicerContext[Any, Any]


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self,
        verification: VerificationService,
        issuance: IssuanceService,
        authentication: AuthenticationService,
        cards: CardService,
        clock: Clock,
        issue_status: Callable[[str, str], Awaitable[IssueStatus]],
    ) -> None:
        self._issue_status = issue_status
        self._verification = verification
        self._issuance = issuance
        self._authentication = authentication
        self._cards = cards
        self._clock = clock

    def _today(self) -> date:
        return self._clock.now().date()

    async def Verify(self, request: pb.VerifyRequest, context: Context) -> pb.VerifyResponse:
        person, card_number, sample = requests.verify_request(request, self._today())
        result = await self._verification.verify(calling_bank(), person, card_number, sample)
        return responses.verify_response(result)

    async def Issue(self, request: pb.IssueRequest, context: Context) -> pb.IssueResponse:
        person, token, consent, key, guardian = requests.issue_request(request, self._today())
        result = await self._issuance.issue(
            calling_bank(),
            IssueCommand(
                applicant=person,
                verification_token=token,
                consent=consent,
                idempotency_key=key,
                guardian=guardian,
            ),
        )
        return responses.issue_response(result)

    async def RequestSmsCode(
        self, request: pb.RequestSmsCodeRequest, context: Context
    ) -> pb.RequestSmsCodeResponse:
        fields, holder, scenario = requests.holder_and_scenario(
            request.social_security_number, request.scenario, self._today()
        )
        fields.raise_if_any()
        assert holder is not None
        assert scenario is not None
        expires_at = await self._authentication.request_sms_code(calling_bank(), holder, scenario)
        return pb.RequestSmsCodeResponse(expires_at=responses.timestamp(expires_at))

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: Context
    ) -> pb.AuthenticateResponse:
        fields, holder, scenario = requests.holder_and_scenario(
            request.social_security_number, request.scenario, self._today()
        )
        factors = request.factors
        if len(factors.password) > requests.MAX_SECRET_LENGTH:
            fields.bad("factors.password", "is too long", "TOO_LONG")
        if len(factors.sms_code) > requests.MAX_SECRET_LENGTH:
            fields.bad("factors.sms_code", "is too long", "TOO_LONG")
        if len(factors.biometric_sample) > requests.MAX_BIOMETRIC_BYTES:
            fields.bad("factors.biometric_sample", "is too large", "TOO_LONG")
        fields.raise_if_any()
        assert holder is not None
        assert scenario is not None
        result = await self._authentication.authenticate(
            calling_bank(),
            holder,
            scenario,
            FactorInput(
                password=factors.password,
                sms_code=factors.sms_code,
                biometric_sample=factors.biometric_sample,
            ),
        )
        return responses.authenticate_response(result)

    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Context
    ) -> pb.ChangePasswordResponse:
        fields = requests.Fields(self._today())
        holder = fields.citizen_id("social_security_number", request.social_security_number)
        current = fields.secret("current_password", request.current_password)
        new = fields.secret("new_password", request.new_password)
        key = fields.idempotency_key("idempotency_key", request.idempotency_key)
        fields.raise_if_any()
        assert holder is not None
        changed_at = await self._authentication.change_password(
            calling_bank(), holder, current, new, key
        )
        return pb.ChangePasswordResponse(changed_at=responses.timestamp(changed_at))

    async def Query(self, request: pb.QueryRequest, context: Context) -> pb.QueryResponse:
        fields = requests.Fields(self._today())
        token = fields.token("auth_token", request.auth_token)
        fields.raise_if_any()
        info = await self._cards.query(calling_bank(), token)
        return responses.query_response(info)

    async def AuthorizeContinuedUse(
        self, request: pb.AuthorizeContinuedUseRequest, context: Context
    ) -> pb.AuthorizeContinuedUseResponse:
        fields = requests.Fields(self._today())
        token = fields.token("auth_token", request.auth_token)
        fields.raise_if_any()
        view = await self._cards.authorize_continued_use(calling_bank(), token)
        return pb.AuthorizeContinuedUseResponse(card=responses.card(view))

    async def Terminate(
        self, request: pb.TerminateRequest, context: Context
    ) -> pb.TerminateResponse:
        fields = requests.Fields(self._today())
        token = fields.token("auth_token", request.auth_token)
        key = fields.idempotency_key("idempotency_key", request.idempotency_key)
        fields.raise_if_any()
        view, terminated_at = await self._cards.terminate(calling_bank(), token, key)
        return pb.TerminateResponse(
            card=responses.card(view), terminated_at=responses.timestamp(terminated_at)
        )

    async def GetIssueStatus(
        self, request: pb.GetIssueStatusRequest, context: Context
    ) -> pb.GetIssueStatusResponse:
        fields = requests.Fields(self._today())
        key = fields.idempotency_key("idempotency_key", request.idempotency_key)
        fields.raise_if_any()
        status = await self._issue_status(calling_bank(), key)
        return responses.issue_status_response(status)
