"""Counts platform calls and applies the fault plan around the handlers.

Every call of an `essc.platform.v1` method that reaches the gRPC server is counted, faulted
ones included; ControlService (the test surface) and health checks are neither counted nor
faulted. OperationService is both: the platform's recovery surface fails with the rest.
See `plan.py` for the order in which faults apply.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Never

import grpc

from essc_gateway.clock import Clock
from essc_gateway.simplatform.plan import FaultPlan, Rejection, RejectionKind
from essc_gateway.simplatform.status import Context, abort

PLATFORM_PREFIX = "/essc.platform.v1."
CONTROL_PREFIX = "/essc.platform.v1.ControlService/"

# After the caller's deadline gRPC cancels the handler; this margin makes sure it does so
# before a hanging handler would end the call itself.
_DEADLINE_MARGIN = 1.0

Handler = Callable[[Any, Context], Awaitable[Any]]

_MESSAGES = {
    RejectionKind.MAINTENANCE: "the platform is in maintenance",
    RejectionKind.OUTAGE: "the platform is unavailable",
    RejectionKind.INJECTED_ERROR: "injected error",
}


class PlatformInterceptor(grpc.aio.ServerInterceptor):
    """Counts calls per full method name and applies the fault plan to each."""

    def __init__(
        self,
        faults: FaultPlan,
        counts: Counter[str],
        clock: Clock,
        traceparents: dict[str, str] | None = None,
    ) -> None:
        self._faults = faults
        self._counts = counts
        self._clock = clock
        # The last W3C `traceparent` received per method: shows that callers propagate traces.
        self._traceparents = traceparents if traceparents is not None else {}

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
            or not method.startswith(PLATFORM_PREFIX)
            or method.startswith(CONTROL_PREFIX)
        ):
            return handler
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "traceparent" and isinstance(value, str):
                self._traceparents[method] = value
        # The servicers' methods are coroutines: grpc.aio awaits what they return.
        inner: Handler = handler.unary_unary  # type: ignore[assignment]
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method, inner),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, inner: Handler) -> Handler:
        async def handle(request: Any, context: Context) -> Any:
            self._counts[method] += 1
            plan = self._faults.plan_call(method)
            if plan.rejection is not None:
                await self._reject(context, plan.rejection)
            if plan.hang:
                await hang_until_deadline(context)
            if plan.delay > 0:
                await asyncio.sleep(plan.delay)
            response = await inner(request, context)
            if plan.lose_answer:
                # The handler ran (a write is committed); the caller never learns of it.
                await hang_until_deadline(context)
            return response

        return handle

    async def _reject(self, context: Context, rejection: Rejection) -> Never:
        metadata = {"rule": str(rejection.rule)}
        if rejection.retry_after is not None:
            ends_at = self._clock.now() + rejection.retry_after
            metadata["ends_at"] = ends_at.isoformat()
        await abort(
            context,
            grpc.StatusCode[rejection.code],
            _MESSAGES[rejection.kind],
            rejection.kind.value,
            metadata=metadata,
            retry_after=rejection.retry_after,
        )


async def hang_until_deadline(context: Context) -> Never:
    """Gives no answer: gRPC cancels the handler at the caller's deadline or cancellation."""
    remaining = context.time_remaining()
    if remaining is None:
        await asyncio.get_running_loop().create_future()  # never resolves: until cancelled
    else:
        await asyncio.sleep(max(0.0, remaining) + _DEADLINE_MARGIN)
    # Not cancelled after all: end as the deadline would, without details (no "answer").
    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
