"""Typed async clients of the gateway: `GatewayClient` for banks, `OperatorClient` for operators.

Each method takes the protobuf request, applies the deadline (per call, else per RPC from
the config, else the config's default), sends the bearer token if configured, and returns
the protobuf response or raises a `GatewayCallError` subclass.
"""

# `timeout=` is the gRPC deadline: sent to the gateway, which plans its platform attempts
# within it. asyncio.timeout (what ASYNC109 suggests) would only cancel locally.
# ruff: noqa: ASYNC109

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Self, TypeVar

import grpc
from google.protobuf.message import Message

from essc.gateway.v1 import gateway_pb2 as pb
from essc.gateway.v1 import gateway_pb2_grpc, operator_pb2_grpc
from essc.gateway.v1 import operator_pb2 as opb
from essc_gateway_client.channel import ClientConfig, open_channel
from essc_gateway_client.errors import from_rpc_error

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


def new_idempotency_key() -> str:
    """A fresh idempotency key (32 hex characters) for Issue, ChangePassword or Terminate.

    Keep it with the request: repeating an in-doubt write with the same key is safe.
    """
    return uuid.uuid4().hex


class _Client:
    """Channel ownership, credentials metadata, deadlines and error mapping."""

    def __init__(self, config: ClientConfig, *, channel: grpc.aio.Channel | None = None) -> None:
        self._config = config
        # A channel passed in belongs to the caller (it may be shared): never closed here.
        self._owns_channel = channel is None
        self._channel = open_channel(config) if channel is None else channel
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {config.token}"),) if config.token else ()
        )

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel, e.g. to share it with another client."""
        return self._channel

    async def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self,
        rpc: str,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> Resp:
        deadline = self._config.timeout_for(rpc) if timeout is None else timeout
        try:
            return await method(request, timeout=deadline, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            # `from None`: the AioRpcError's text (debug string, peer) stays out of logs.
            raise from_rpc_error(error) from None


class GatewayClient(_Client):
    """A bank's client of `essc.gateway.v1.GatewayService`.

    Construct it inside a running event loop, from a `ClientConfig` (it opens and closes its
    own channel) or with `channel=` an existing one (used as is; TLS and retry settings of
    the config are then ignored, the token and deadlines still apply).
    """

    def __init__(self, config: ClientConfig, *, channel: grpc.aio.Channel | None = None) -> None:
        super().__init__(config, channel=channel)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    async def verify(
        self, request: pb.VerifyRequest, *, timeout: float | None = None
    ) -> pb.VerifyResponse:
        """Real name, real card, real person (A2); a verification token when all pass."""
        return await self._call("Verify", self._stub.Verify, request, timeout)

    async def issue(
        self, request: pb.IssueRequest, *, timeout: float | None = None
    ) -> pb.IssueResponse:
        """Issues an e-SSC. Retried on UNAVAILABLE: it carries an idempotency key."""
        return await self._call("Issue", self._stub.Issue, request, timeout)

    async def request_sms_code(
        self, request: pb.RequestSmsCodeRequest, *, timeout: float | None = None
    ) -> pb.RequestSmsCodeResponse:
        """Has the platform send an SMS code. Never retried: it would send a second SMS."""
        return await self._call("RequestSmsCode", self._stub.RequestSmsCode, request, timeout)

    async def authenticate(
        self, request: pb.AuthenticateRequest, *, timeout: float | None = None
    ) -> pb.AuthenticateResponse:
        """Authenticates a holder for a scenario. Never retried: attempts count to lockout."""
        return await self._call("Authenticate", self._stub.Authenticate, request, timeout)

    async def change_password(
        self, request: pb.ChangePasswordRequest, *, timeout: float | None = None
    ) -> pb.ChangePasswordResponse:
        """Replaces the holder's password (K1, K3). Keyed: retried on UNAVAILABLE."""
        return await self._call("ChangePassword", self._stub.ChangePassword, request, timeout)

    async def query(
        self, request: pb.QueryRequest, *, timeout: float | None = None
    ) -> pb.QueryResponse:
        """Social-security information; needs a QUERY_RECORDS auth token."""
        return await self._call("Query", self._stub.Query, request, timeout)

    async def authorize_continued_use(
        self, request: pb.AuthorizeContinuedUseRequest, *, timeout: float | None = None
    ) -> pb.AuthorizeContinuedUseResponse:
        """Continued use while the physical card is lost (A6); needs a CARD_LOSS token."""
        return await self._call(
            "AuthorizeContinuedUse", self._stub.AuthorizeContinuedUse, request, timeout
        )

    async def terminate(
        self, request: pb.TerminateRequest, *, timeout: float | None = None
    ) -> pb.TerminateResponse:
        """Ends the service for this bank (A12); needs an UNBIND token. Keyed: retried."""
        return await self._call("Terminate", self._stub.Terminate, request, timeout)

    async def get_issue_status(
        self, request: pb.GetIssueStatusRequest, *, timeout: float | None = None
    ) -> pb.GetIssueStatusResponse:
        """What became of a PENDING issuance, by its idempotency key."""
        return await self._call("GetIssueStatus", self._stub.GetIssueStatus, request, timeout)


class OperatorClient(_Client):
    """An operator's client of `essc.gateway.v1.OperatorService` (operator credentials).

    Same construction as `GatewayClient`; it can share a bank client's channel.
    """

    def __init__(self, config: ClientConfig, *, channel: grpc.aio.Channel | None = None) -> None:
        super().__init__(config, channel=channel)
        self._stub = operator_pb2_grpc.OperatorServiceStub(self._channel)

    async def announce_maintenance(
        self, request: opb.AnnounceMaintenanceRequest, *, timeout: float | None = None
    ) -> opb.AnnounceMaintenanceResponse:
        """Announces a window (A16(1)(a)); announced now, by the gateway's clock."""
        return await self._call(
            "AnnounceMaintenance", self._stub.AnnounceMaintenance, request, timeout
        )

    async def amend_maintenance(
        self, request: opb.AmendMaintenanceRequest, *, timeout: float | None = None
    ) -> opb.AmendMaintenanceResponse:
        """Changes a window's times, scope or reason; every version is kept."""
        return await self._call("AmendMaintenance", self._stub.AmendMaintenance, request, timeout)

    async def cancel_maintenance(
        self, request: opb.CancelMaintenanceRequest, *, timeout: float | None = None
    ) -> opb.CancelMaintenanceResponse:
        """Cancels a window."""
        return await self._call("CancelMaintenance", self._stub.CancelMaintenance, request, timeout)

    async def list_maintenance(
        self, request: opb.ListMaintenanceRequest, *, timeout: float | None = None
    ) -> opb.ListMaintenanceResponse:
        """Windows, all or only current ones."""
        return await self._call("ListMaintenance", self._stub.ListMaintenance, request, timeout)

    async def force_circuit_open(
        self, request: opb.ForceCircuitOpenRequest, *, timeout: float | None = None
    ) -> opb.ForceCircuitOpenResponse:
        """Holds a platform operation's circuit open until a time."""
        return await self._call("ForceCircuitOpen", self._stub.ForceCircuitOpen, request, timeout)

    async def release_circuit(
        self, request: opb.ReleaseCircuitRequest, *, timeout: float | None = None
    ) -> opb.ReleaseCircuitResponse:
        """Ends a forced opening."""
        return await self._call("ReleaseCircuit", self._stub.ReleaseCircuit, request, timeout)

    async def list_circuits(
        self, request: opb.ListCircuitsRequest, *, timeout: float | None = None
    ) -> opb.ListCircuitsResponse:
        """Every platform operation's circuit state."""
        return await self._call("ListCircuits", self._stub.ListCircuits, request, timeout)

    async def declare_incident(
        self, request: opb.DeclareIncidentRequest, *, timeout: float | None = None
    ) -> opb.DeclareIncidentResponse:
        """Declares an incident (A16(1)(c), (d)) over a time range."""
        return await self._call("DeclareIncident", self._stub.DeclareIncident, request, timeout)

    async def list_incidents(
        self, request: opb.ListIncidentsRequest, *, timeout: float | None = None
    ) -> opb.ListIncidentsResponse:
        """Declared incidents."""
        return await self._call("ListIncidents", self._stub.ListIncidents, request, timeout)

    async def get_liability_report(
        self, request: opb.GetLiabilityReportRequest, *, timeout: float | None = None
    ) -> opb.GetLiabilityReportResponse:
        """Failed requests with their liability clause and evidence."""
        return await self._call(
            "GetLiabilityReport", self._stub.GetLiabilityReport, request, timeout
        )

    async def get_monthly_statement(
        self, request: opb.GetMonthlyStatementRequest, *, timeout: float | None = None
    ) -> opb.GetMonthlyStatementResponse:
        """A bank's month: availability, failures and outage minutes by clause."""
        return await self._call(
            "GetMonthlyStatement", self._stub.GetMonthlyStatement, request, timeout
        )

    async def verify_ledger(
        self, request: opb.VerifyLedgerRequest, *, timeout: float | None = None
    ) -> opb.VerifyLedgerResponse:
        """Walks the ledger's hash chain."""
        return await self._call("VerifyLedger", self._stub.VerifyLedger, request, timeout)

    async def get_key_status(
        self, request: opb.GetKeyStatusRequest, *, timeout: float | None = None
    ) -> opb.GetKeyStatusResponse:
        """Every key version of every bank (no material), and the key jobs' progress."""
        return await self._call("GetKeyStatus", self._stub.GetKeyStatus, request, timeout)

    async def rotate_key(
        self, request: opb.RotateKeyRequest, *, timeout: float | None = None
    ) -> opb.RotateKeyResponse:
        """A new version of a bank's key, sealing from now on (K6)."""
        return await self._call("RotateKey", self._stub.RotateKey, request, timeout)

    async def retire_key(
        self, request: opb.RetireKeyRequest, *, timeout: float | None = None
    ) -> opb.RetireKeyResponse:
        """Retires a version nothing depends on (FailedPrecondition KEY_IN_USE otherwise)."""
        return await self._call("RetireKey", self._stub.RetireKey, request, timeout)

    async def declare_key_compromised(
        self, request: opb.DeclareKeyCompromisedRequest, *, timeout: float | None = None
    ) -> opb.DeclareKeyCompromisedResponse:
        """A key incident (K7); the answer is the incident report."""
        return await self._call(
            "DeclareKeyCompromised", self._stub.DeclareKeyCompromised, request, timeout
        )
