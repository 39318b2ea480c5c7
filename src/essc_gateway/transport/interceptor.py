"""Cross-cutting work for every call: identify the caller (bank or operator), admit or shed,
refuse calls covered by a maintenance window before any platform call, carry the deadline,
map errors to rich statuses, log one line per call (reasons and codes only, no personal data).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import NoOpTracer, SpanKind, Status, StatusCode, Tracer, format_trace_id

from essc_gateway.access.gate import OperatorGate
from essc_gateway.clock import Clock
from essc_gateway.deadlines import request_deadline
from essc_gateway.domain.maintenance import GATEWAY_RPCS
from essc_gateway.errors import (
    ErrorReason,
    GatewayError,
    InternalError,
    MaintenanceInProgress,
    MalformedRequest,
    PermissionDenied,
    PlatformError,
    ResourceExhausted,
    StoreFailure,
    Unauthenticated,
)
from essc_gateway.liability.counts import RequestCounter
from essc_gateway.liability.ledger import Ledger
from essc_gateway.metrics import GatewayMetrics
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.store.base import StoreUnavailable
from essc_gateway.transport.admission import Admission
from essc_gateway.transport.banks import BankAuthenticator
from essc_gateway.transport.context import (
    reset_calling_bank,
    reset_calling_operator,
    set_calling_bank,
    set_calling_operator,
)
from essc_gateway.transport.decoding import UNDECODABLE, guarded, tolerant
from essc_gateway.transport.log_budget import LogBudget
from essc_gateway.transport.status import status_code_for, to_rpc_status

GATEWAY_SERVICE_PREFIX = "/essc.gateway.v1.GatewayService/"
OPERATOR_SERVICE_PREFIX = "/essc.gateway.v1.OperatorService/"
access_log = logging.getLogger("essc_gateway.access")
error_log = logging.getLogger("essc_gateway.errors")

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Any]]
Metadata = tuple[tuple[str, str | bytes], ...]
HolderOf = Callable[[Any, str], str | None]
"""(request, bank) -> the holder's lookup token, if the request names one."""


async def _refuse_body(request: Any, context: Context) -> Any:
    """The handler of an undecodable body, once its bank is admitted."""
    raise MalformedRequest


class _Arrival:
    """When a call arrived and the deadline its caller set, for its liability record."""

    __slots__ = ("at", "remaining")

    def __init__(self, at: datetime, remaining: float | None) -> None:
        self.at = at
        self.remaining = remaining

    @property
    def deadline(self) -> datetime | None:
        return None if self.remaining is None else self.at + timedelta(seconds=self.remaining)


def _answer(error: GatewayError) -> tuple[str, str]:
    """A refusal as the access log keeps it: the status code's name and the reason."""
    return status_code_for(error).name, error.reason.value


def _code_value(code: grpc.StatusCode | None) -> int:
    return 2 if code is None else int(code.value[0])  # UNKNOWN when none was set


class GatewayInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        banks: BankAuthenticator,
        operators: BankAuthenticator,
        admission: Admission,
        calendar: MaintenanceCalendar,
        forwarding_banks: frozenset[str],
        metrics: GatewayMetrics,
        clock: Clock,
        ledger: Ledger,
        counter: RequestCounter,
        holder_of: HolderOf,
        gate: OperatorGate,
        tracer: Tracer | None = None,
    ) -> None:
        """Args:
        holder_of: the lookup token of the holder a request is about, from what it carries
            (an ID number, an auth token), so that a complaint finds every failed request
            of the holder, those refused before any service ran included (A15).
        """
        self._tracer = tracer or NoOpTracer()
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._ledger = ledger
        self._counter = counter
        self._holder_of = holder_of
        self._banks = banks
        self._operators = operators
        self._gate = gate
        self._admission = admission
        self._calendar = calendar
        self._forwarding_banks = forwarding_banks
        self._metrics = metrics
        self._clock = clock
        self._unaccountable_log = LogBudget(clock, access_log)
        self._server_attributes: dict[str, str | int] = {}

    def serving_at(self, host: str, port: int) -> None:
        """Where the server listens, for its spans (`server.address`, `server.port`); told
        once the port is bound, before the first call (methods are wrapped at their first)."""
        self._server_attributes = {"server.address": host, "server.port": port}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:  # a servicer's handlers never change: wrap each once
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if not method.startswith((GATEWAY_SERVICE_PREFIX, OPERATOR_SERVICE_PREFIX)):
            # Health and reflection: their bad bodies are refused too, without a traceback.
            self._handlers[method] = guarded(handler, self._refuse_malformed)
            return self._handlers[method]
        if handler.unary_unary is None:
            return handler
        # The servicer's methods are coroutines: grpc.aio awaits what they return.
        inner: Handler = handler.unary_unary  # type: ignore[assignment]
        if method.startswith(GATEWAY_SERVICE_PREFIX):
            wrapped = self._wrap(method, GATEWAY_SERVICE_PREFIX, inner, bank=True)
        else:
            wrapped = self._wrap(method, OPERATOR_SERVICE_PREFIX, inner, bank=False)
        self._handlers[method] = grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
        return self._handlers[method]

    async def _refuse_malformed(self, context: Context) -> None:
        if self._unaccountable_log.allow():
            access_log.info("undecodable body for a health or reflection call refused")
        failure = MalformedRequest()
        context.set_code(status_code_for(failure))
        await context.abort_with_status(to_rpc_status(failure))

    def _identify_quietly(self, metadata: Metadata, context: Context, *, bank: bool) -> str:
        """The caller of an undecodable request if it can be told, else "-": a bad body is
        answered as such, and recorded against the bank that sent it."""
        try:
            if bank:
                return self._banks.identify(metadata, context)
            return f"operator:{self._operators.identify(metadata, context)}"
        except Unauthenticated:
            return "-"

    def _operator(self, metadata: Metadata, context: Context) -> str:
        try:
            return self._operators.identify(metadata, context)
        except Unauthenticated:
            pass
        try:
            self._banks.identify(metadata, context)
        except Unauthenticated:
            raise Unauthenticated(
                "the operator could not be identified",
                reason=ErrorReason.OPERATOR_UNAUTHENTICATED,
            ) from None
        raise PermissionDenied(
            "operator calls are not permitted to banks", reason=ErrorReason.NOT_AN_OPERATOR
        )

    async def _serve_bank(
        self,
        rpc: str,
        bank: str,
        inner: Handler,
        request: Any,
        context: Context,
        arrived_at: datetime,
    ) -> Any:
        try:
            await self._admission.enter(bank)
        except ResourceExhausted as shed:
            self._metrics.shed.add(1, {"bank": bank, "reason": shed.reason.value})
            raise
        try:
            forwarding = rpc == "Issue" and bank in self._forwarding_banks
            if rpc in GATEWAY_RPCS and not forwarding:
                try:
                    # Judged at arrival, as its liability record will be (A16(1)(a)).
                    self._calendar.refuse(rpc, arrived_at)
                except MaintenanceInProgress:
                    self._metrics.fast_failures.add(1, {"operation": rpc, "cause": "window"})
                    raise
            try:
                return await inner(request, context)
            except PlatformError as failure:
                overrun = self._calendar.overrunning(rpc, self._clock.now())
                if overrun is not None:
                    failure.metadata["maintenance_window"] = overrun.window_id
                    failure.metadata["maintenance_overrun"] = "true"
                raise
        finally:
            self._admission.leave()

    def _wrap(self, method: str, prefix: str, inner: Handler, *, bank: bool) -> Handler:
        rpc = method.removeprefix(prefix)
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": prefix.strip("/"),
            "rpc.method": rpc,
            **self._server_attributes,
        }
        span_name = method.removeprefix("/")  # "{rpc.service}/{rpc.method}", as conventions say
        serve = self._serve(rpc, inner, bank=bank)

        async def handle(request: Any, context: Context) -> Any:
            # The server span, from the caller's W3C context. Made here rather than by
            # OpenTelemetry's server interceptor, which wraps every context call and misses
            # abort_with_status (measured: a fifth of a Verify's CPU went to it).
            metadata: Metadata = tuple(context.invocation_metadata() or ())
            carrier = {key: value for key, value in metadata if isinstance(value, str)}
            started = self._clock.monotonic()
            self._metrics.server_in_flight.add(1, attributes)
            code = 0
            try:
                with self._tracer.start_as_current_span(
                    span_name,
                    context=propagate.extract(carrier),
                    kind=SpanKind.SERVER,
                    attributes=attributes,
                    record_exception=False,
                    set_status_on_exception=False,
                ) as span:
                    try:
                        response = await serve(request, context, metadata)
                    except BaseException:
                        code = _code_value(context.code())
                        span.set_attribute("rpc.grpc.status_code", code)
                        raise
                    span.set_attribute("rpc.grpc.status_code", 0)
                    return response
            finally:
                self._metrics.server_in_flight.add(-1, attributes)
                self._metrics.server_duration.record(
                    self._clock.monotonic() - started,
                    {**attributes, "rpc.grpc.status_code": code},
                )

        return handle

    def _serve(
        self, rpc: str, inner: Handler, *, bank: bool
    ) -> Callable[[Any, Context, Metadata], Awaitable[Any]]:
        async def handle(request: Any, context: Context, metadata: Metadata) -> Any:
            started = self._clock.monotonic()
            arrived = _Arrival(self._clock.now(), context.time_remaining())
            remaining = arrived.remaining
            deadline_token = request_deadline.set(
                started + remaining if remaining is not None else None
            )
            caller = "-"
            try:
                if request is UNDECODABLE and bank:
                    caller = self._identify_quietly(metadata, context, bank=bank)
                    if bank and caller != "-":  # admitted (rate limit) like its other calls
                        await self._serve_bank(
                            rpc, caller, _refuse_body, request, context, arrived.at
                        )
                    raise MalformedRequest
                if bank:
                    caller = self._banks.identify(metadata, context)
                    bank_token = set_calling_bank(caller)
                    try:
                        response = await self._serve_bank(
                            rpc, caller, inner, request, context, arrived.at
                        )
                    finally:
                        reset_calling_bank(bank_token)
                else:
                    try:
                        operator = self._operator(metadata, context)
                    except GatewayError as refused:
                        await self._gate.answered(None, None, rpc, request, *_answer(refused))
                        raise
                    caller = f"operator:{operator}"
                    response = await self._serve_operator(rpc, operator, inner, request, context)
            except GatewayError as error:
                await self._refuse(
                    context, rpc, caller, started, arrived, request, error, bank=bank
                )
            except grpc.aio.AbortError:
                raise
            except Exception as unexpected:
                failure = self._as_gateway_error(rpc, unexpected)
                await self._refuse(
                    context, rpc, caller, started, arrived, request, failure, bank=bank
                )
            finally:
                request_deadline.reset(deadline_token)
            if bank:
                self._counter.count(caller, self._clock.now().date(), failed=False)
            self._log(rpc, caller, started, "OK", "")
            return response

        return handle

    async def _serve_operator(
        self, rpc: str, operator: str, inner: Handler, request: Any, context: Context
    ) -> Any:
        """Admitted by the operator's roles, logged before it runs and once answered."""
        access_id = self._gate.new_access_id()
        try:
            await self._gate.admit(access_id, operator, rpc, request)
            if request is UNDECODABLE:
                raise MalformedRequest
            operator_token = set_calling_operator(operator)
            try:
                response = await inner(request, context)
            finally:
                reset_calling_operator(operator_token)
        except GatewayError as error:
            await self._gate.answered(access_id, operator, rpc, request, *_answer(error))
            raise
        except Exception as unexpected:
            # Answered as any call's unexpected failure is (logged once, here).
            failure = self._as_gateway_error(rpc, unexpected)
            await self._gate.answered(access_id, operator, rpc, request, *_answer(failure))
            raise failure from unexpected
        except asyncio.CancelledError:
            # The caller went away (or its deadline passed): the call's end is still logged,
            # shielded from the cancellation that is under way.
            answer = self._gate.answered(
                access_id, operator, rpc, request, grpc.StatusCode.CANCELLED.name, ""
            )
            await asyncio.shield(answer)
            raise
        await self._gate.answered(access_id, operator, rpc, request, "OK", "")
        return response

    @staticmethod
    def _as_gateway_error(rpc: str, unexpected: Exception) -> GatewayError:
        """The answer to an exception that is not a GatewayError: the store being unable to
        write is UNAVAILABLE (transient); anything else is a fault of the gateway."""
        if isinstance(unexpected, StoreUnavailable):
            return StoreFailure("the gateway cannot record this request now; retry shortly")
        # Only the type and frames: an exception message may quote personal data.
        error_log.error(
            "unexpected %s in %s\n%s",
            type(unexpected).__name__,
            rpc,
            "".join(traceback.format_tb(unexpected.__traceback__)),
        )
        return InternalError("internal error", reason=ErrorReason.INTERNAL)

    async def _refuse(
        self,
        context: Context,
        rpc: str,
        caller: str,
        started: float,
        arrived: _Arrival,
        request: Any,
        error: GatewayError,
        *,
        bank: bool,
    ) -> None:
        if bank and caller != "-":
            await self._record(caller, rpc, arrived, request, error)
        await self._abort(context, rpc, caller, started, error)

    async def _record(
        self, bank: str, rpc: str, arrived: _Arrival, request: Any, error: GatewayError
    ) -> None:
        """A durable liability record for the failed request (A16); never blocks the answer."""
        self._counter.count(bank, self._clock.now().date(), failed=True)
        span = trace.get_current_span().get_span_context()
        try:
            record = await self._ledger.record_failure(
                bank_id=bank,
                rpc=rpc,
                status_code=status_code_for(error).name,
                error=error,
                trace_id=format_trace_id(span.trace_id) if span.is_valid else "",
                span_context=span if span.is_valid else None,
                holder_token=None if request is UNDECODABLE else self._holder_of(request, bank),
                arrived_at=arrived.at,
                deadline_at=arrived.deadline,
                refused_in_window=isinstance(error, MaintenanceInProgress),
            )
        except Exception as unexpected:
            error_log.error("liability record not written: %s", type(unexpected).__name__)
            return
        # The bank can cite the record in a dispute; a dashboard can find it from the trace.
        error.metadata["ledger_request_id"] = record.request_id
        current = trace.get_current_span()
        current.set_attribute("essc.reason", error.reason.value)
        current.set_attribute("essc.clause", record.clause.value)
        current.set_attribute("essc.ledger_request_id", record.request_id)

    async def _abort(
        self, context: Context, rpc: str, caller: str, started: float, error: GatewayError
    ) -> None:
        code = status_code_for(error)
        self._log(rpc, caller, started, code.name, error.reason.value)
        # Every refusal is an error of the server span (OTel's convention marks only
        # server-side codes): the ledger and dashboards look for them.
        context.set_code(code)
        trace.get_current_span().set_status(Status(StatusCode.ERROR, code.name))
        await context.abort_with_status(to_rpc_status(error))

    def _log(self, rpc: str, caller: str, started: float, code: str, reason: str) -> None:
        unaccountable = caller == "-" or reason == ErrorReason.MALFORMED_REQUEST
        if unaccountable and not self._unaccountable_log.allow():
            return
        ms = (self._clock.monotonic() - started) * 1000
        access_log.info(
            "%s bank=%s code=%s reason=%s ms=%.1f",
            rpc,
            caller,
            code,
            reason or "-",
            ms,
            extra={
                "bank": caller,
                "rpc": rpc,
                "code": code,
                "reason": reason or None,
                "duration_ms": round(ms, 1),
            },
        )
