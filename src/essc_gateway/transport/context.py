"""Per-call facts set by the interceptor and read by the servicer."""

from __future__ import annotations

from contextvars import ContextVar

from essc_gateway.errors import ErrorReason, Unauthenticated

_calling_bank: ContextVar[str | None] = ContextVar("calling_bank", default=None)


def calling_bank() -> str:
    """The bank identified for the current call (set by `GatewayInterceptor`)."""
    bank = _calling_bank.get()
    if bank is None:
        raise Unauthenticated("no calling bank", reason=ErrorReason.BANK_UNAUTHENTICATED)
    return bank


set_calling_bank = _calling_bank.set
reset_calling_bank = _calling_bank.reset


_calling_operator: ContextVar[str | None] = ContextVar("calling_operator", default=None)


def calling_operator() -> str:
    """The operator identified for the current call (set by `GatewayInterceptor`): who
    announced a window or declared an incident, for the evidence."""
    operator = _calling_operator.get()
    if operator is None:
        raise Unauthenticated("no calling operator", reason=ErrorReason.OPERATOR_UNAUTHENTICATED)
    return operator


set_calling_operator = _calling_operator.set
reset_calling_operator = _calling_operator.reset
