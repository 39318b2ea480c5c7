"""Cross-cutting work for every bank call: identify the bank, carry the deadline, map errors
to rich statuses, log one line per call (no personal data: reasons and codes only)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from essc_gateway.clock import Clock
from essc_gateway.deadlines import request_deadline
from essc_gateway.errors import ErrorReason, GatewayError, InternalError
from essc_gateway.transport.banks import BankAuthenticator
from essc_gateway.transport.context import reset_calling_bank, set_calling_bank
from essc_gateway.transport.status import status_code_for, to_rpc_status

GATEWAY_SERVICE_PREFIX = "/essc.gateway.v1.GatewayService/"
access_log = logging.getLogger("essc_gateway.access")
error_log = logging.getLogger("essc_gateway.errors")

Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class GatewayInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: BankAuthenticator, clock: Clock) -> None:
        self._authenticator = authenticator
        self._clock = clock

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if (
            handler is None
            or handler.unary_unary is None
            or not method.startswith(GATEWAY_SERVICE_PREFIX)
        ):
            return handler
        # The servicer's methods are coroutines: grpc.aio awaits what they return.
        inner: Handler = handler.unary_unary  # type: ignore[assignment]
        wrapped = self._wrap(method.removeprefix(GATEWAY_SERVICE_PREFIX), inner)
        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, inner: Handler) -> Handler:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = self._clock.monotonic()
            remaining = context.time_remaining()
            deadline_token = request_deadline.set(
                started + remaining if remaining is not None else None
            )
            bank = "-"
            try:
                bank = self._authenticator.identify(
                    tuple(context.invocation_metadata() or ()), context.auth_context()
                )
                bank_token = set_calling_bank(bank)
                try:
                    response = await inner(request, context)
                finally:
                    reset_calling_bank(bank_token)
            except GatewayError as error:
                await self._abort(context, method, bank, started, error)
            except grpc.aio.AbortError:
                raise
            except Exception as unexpected:
                # Only the type and frames: an exception message may quote personal data.
                error_log.error(
                    "unexpected %s in %s\n%s",
                    type(unexpected).__name__,
                    method,
                    "".join(traceback.format_tb(unexpected.__traceback__)),
                )
                await self._abort(
                    context,
                    method,
                    bank,
                    started,
                    InternalError("internal error", reason=ErrorReason.INTERNAL),
                )
            finally:
                request_deadline.reset(deadline_token)
            self._log(method, bank, started, "OK", "")
            return response

        return handle

    async def _abort(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        method: str,
        bank: str,
        started: float,
        error: GatewayError,
    ) -> None:
        code = status_code_for(error)
        self._log(method, bank, started, code.name, error.reason.value)
        # Set first so that tracing interceptors record the real code, not OK.
        context.set_code(code)
        await context.abort_with_status(to_rpc_status(error))

    def _log(self, method: str, bank: str, started: float, code: str, reason: str) -> None:
        access_log.info(
            "%s bank=%s code=%s reason=%s ms=%.1f",
            method,
            bank,
            code,
            reason or "-",
            (self._clock.monotonic() - started) * 1000,
        )
