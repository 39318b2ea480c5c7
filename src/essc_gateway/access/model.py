"""An OperatorService call as the access log keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AccessEvent:
    access_id: str
    at: datetime
    operator: str
    """The operator's id; "-" when the caller could not be identified."""
    method: str
    target: str
    """What the call was about, from the request's non-personal fields (bank, window,
    version...), e.g. "bank_id=demo-bank"."""
    code: str
    """The gRPC status code name of the answer (OK, PERMISSION_DENIED...)."""
    reason: str
    """The ErrorInfo reason of a refusal; empty when OK."""
