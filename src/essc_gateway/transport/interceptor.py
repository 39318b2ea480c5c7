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
from essc_gateway.tracing.deferred import DeferredSpans, request_spans
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


class _Call:
    """One request's facts, taken at its arrival and handed to each step of its path (the
    caller filled in once identified): the explicit context of the request path."""

    __slots__ = (
        "arrived_at",
        "caller",
        "context",
        "is_bank",
        "metadata",
        "remaining",
        "request",
        "rpc",
        "started",
    )

    def __init__(
        self,
        rpc: str,
        request: Any,
        context: Context,
        metadata: Metadata,
        clock: Clock,
        *,
        is_bank: bool,
    ) -> None:
        self.rpc = rpc
        self.request = request
        self.context = context
        self.metadata = metadata
        self.is_bank = is_bank
        self.started = clock.monotonic()
        self.arrived_at = clock.now()
        self.remaining: float | None = context.time_remaining()
        self.caller = "-"
        """The bank, "operator:<id>", or "-" while (or if never) identified."""

    @property
    def deadline(self) -> float | None:
        """The caller's deadline on the monotonic clock, if it set one."""
        return None if self.remaining is None else self.started + self.remaining

    @property
    def deadline_at(self) -> datetime | None:
        if self.remaining is None:
            return None
        return self.arrived_at + timedelta(seconds=self.remaining)


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
        exports: Callable[[int], bool] = lambda trace_id: True,
    ) -> None:
        """Args:
        holder_of: the lookup token of the holder a request is about, from what it carries
            (an ID number, an auth token), so that a complaint finds every failed request
            of the holder, those refused before any service ran included (A15).
        exports: whether a trace without an error is exported, from its id
            (`tracing.exports_without_error`).
        """
        self._tracer = tracer or NoOpTracer()
        self._exports = exports
        """Whether a trace id's trace is exported without an error (tail sampling): the
        request's deferred client spans are made only then (or when it failed)."""
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

    def _bank_if_known(self, metadata: Metadata, context: Context) -> str:
        """The bank that sent an undecodable request if it can be told, else "-": a bad
        body is answered as such, and recorded against the bank that sent it."""
        try:
            return self._banks.identify(metadata, context)
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
                    deferred = DeferredSpans()
                    spans_token = request_spans.set(deferred)
                    failed = True
                    try:
                        response = await serve(request, context, metadata)
                        failed = False
                    except BaseException:
                        code = _code_value(context.code())
                        raise
                    finally:
                        request_spans.reset(spans_token)
                        span.set_attribute("rpc.grpc.status_code", code)
                        trace_id = span.get_span_context().trace_id
                        if failed or deferred.any_failed or self._exports(trace_id):
                            deferred.emit(self._tracer, trace.set_span_in_context(span))
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
        """The request path, one named step each: the call's facts taken at arrival; the
        caller identified; admitted (a bank's rate and the gateway's capacity; an
        operator's roles); the maintenance gate; the deadline carried to the platform
        calls; the call; its outcome recorded (a bank's failure in the liability ledger,
        an operator's call in the access log) and the answer logged."""
        steps = self._bank_steps if bank else self._operator_steps

        async def handle(request: Any, context: Context, metadata: Metadata) -> Any:
            call = _Call(rpc, request, context, metadata, self._clock, is_bank=bank)
            deadline_token = request_deadline.set(call.deadline)
            try:
                response = await steps(call, inner)
            except GatewayError as error:
                await self._failed(call, error)
            except grpc.aio.AbortError:
                raise
            except Exception as unexpected:
                await self._failed(call, self._as_gateway_error(rpc, unexpected))
            finally:
                request_deadline.reset(deadline_token)
            self._succeeded(call)
            return response

        return handle

    async def _bank_steps(self, call: _Call, inner: Handler) -> Any:
        inner = self._identify_bank(call, inner)
        bank_token = set_calling_bank(call.caller)
        try:
            await self._admit_bank(call.caller)
            try:
                self._maintenance_gate(call)
                return await self._call_bank(call, inner)
            finally:
                self._admission.leave()
        finally:
            reset_calling_bank(bank_token)

    def _identify_bank(self, call: _Call, inner: Handler) -> Handler:
        """Step: the calling bank, or Unauthenticated. An undecodable body is answered as
        such against the bank that sent it, admitted like its other calls, when the bank
        can be told; anonymously (no record) when not."""
        if call.request is not UNDECODABLE:
            call.caller = self._banks.identify(call.metadata, call.context)
            return inner
        call.caller = self._bank_if_known(call.metadata, call.context)
        if call.caller == "-":
            raise MalformedRequest
        return _refuse_body

    async def _admit_bank(self, bank: str) -> None:
        """Step: the bank's rate limit and the gateway's capacity (pair with `leave`)."""
        try:
            await self._admission.enter(bank)
        except ResourceExhausted as shed:
            self._metrics.shed.add(1, {"bank": bank, "reason": shed.reason.value})
            raise

    def _maintenance_gate(self, call: _Call) -> None:
        """Step: a call inside an announced window is refused without calling the platform,
        judged at arrival as its liability record will be (A16(1)(a)). A forwarding bank's
        Issue is queued instead (it waits for the window's end)."""
        forwarding = call.rpc == "Issue" and call.caller in self._forwarding_banks
        if call.rpc not in GATEWAY_RPCS or forwarding:
            return
        try:
            self._calendar.refuse(call.rpc, call.arrived_at)
        except MaintenanceInProgress:
            self._metrics.fast_failures.add(1, {"operation": call.rpc, "cause": "window"})
            raise

    async def _call_bank(self, call: _Call, inner: Handler) -> Any:
        """Step: the call; a platform failure after a window's announced end says so."""
        try:
            return await inner(call.request, call.context)
        except PlatformError as failure:
            overrun = self._calendar.overrunning(call.rpc, self._clock.now())
            if overrun is not None:
                failure.metadata["maintenance_window"] = overrun.window_id
                failure.metadata["maintenance_overrun"] = "true"
            raise

    async def _operator_steps(self, call: _Call, inner: Handler) -> Any:
        try:
            operator = self._operator(call.metadata, call.context)
        except GatewayError as refused:  # unidentified: still in the access log
            await self._gate.answered(None, None, call.rpc, call.request, *_answer(refused))
            raise
        call.caller = f"operator:{operator}"
        return await self._serve_operator(call.rpc, operator, inner, call.request, call.context)

    def _succeeded(self, call: _Call) -> None:
        """Step: a success counted (a bank's, for its daily statement) and logged."""
        if call.is_bank:
            self._counter.count(call.caller, self._clock.now().date(), failed=False)
        self._log(call.rpc, call.caller, call.started, "OK", "")

    async def _failed(self, call: _Call, error: GatewayError) -> None:
        """Step: a bank's failure recorded in the liability ledger (an unidentified caller's
        cannot be), then the refusal answered and logged."""
        if call.is_bank and call.caller != "-":
            await self._record(call, error)
        await self._abort(call, error)

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

    async def _record(self, call: _Call, error: GatewayError) -> None:
        """A durable liability record for the failed request (A16); never blocks the answer."""
        bank, request = call.caller, call.request
        self._counter.count(bank, self._clock.now().date(), failed=True)
        span = trace.get_current_span().get_span_context()
        try:
            record = await self._ledger.record_failure(
                bank_id=bank,
                rpc=call.rpc,
                status_code=status_code_for(error).name,
                error=error,
                trace_id=format_trace_id(span.trace_id) if span.is_valid else "",
                span_context=span if span.is_valid else None,
                holder_token=None if request is UNDECODABLE else self._holder_of(request, bank),
                arrived_at=call.arrived_at,
                deadline_at=call.deadline_at,
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

    async def _abort(self, call: _Call, error: GatewayError) -> None:
        code = status_code_for(error)
        self._log(call.rpc, call.caller, call.started, code.name, error.reason.value)
        # Every refusal is an error of the server span (OTel's convention marks only
        # server-side codes): the ledger and dashboards look for them.
        call.context.set_code(code)
        trace.get_current_span().set_status(Status(StatusCode.ERROR, code.name))
        await call.context.abort_with_status(to_rpc_status(error))

    def _log(self, rpc: str, caller: str, started: float, code: str, reason: str) -> None:
        if not access_log.isEnabledFor(logging.INFO):  # nothing to format
            return
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
