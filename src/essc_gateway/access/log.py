"""The operators' access log (A13(1)): every OperatorService call, allowed or refused, as an
entry of the evidence log. Its entries are Merkle leaves under the signed checkpoints, so a
row edited or removed afterwards no longer verifies (`VerifyLedger`, `ledger verify`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from essc_gateway.access.model import AccessEvent
from essc_gateway.clock import Clock
from essc_gateway.evidence.entries import (
    EntryKind,
    access_entry,
    access_from_entry,
    parse,
)
from essc_gateway.evidence.ports import EvidenceLogStore

TARGET_FIELDS = (
    "bank_id",
    "window_id",
    "incident_id",
    "request_id",
    "scope",
    "purpose",
    "version",
    "action_id",
    "month",
    "holder_ref",
)
"""The request fields a target is made of: identifiers of banks, windows, keys and pseudonyms,
never a field that carries personal data (an allow-list, so a new field stays out)."""


def access_target(request: object) -> str:
    """`name=value` of the request's non-empty target fields, in TARGET_FIELDS order."""
    if not isinstance(request, Message):
        return ""
    fields = request.DESCRIPTOR.fields_by_name
    parts: list[str] = []
    for name in TARGET_FIELDS:
        if name not in fields or fields[name].type == fields[name].TYPE_MESSAGE:
            continue
        value = getattr(request, name)
        if isinstance(value, str | int) and not isinstance(value, bool) and value:
            parts.append(f"{name}={value}")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class LoggedAccess:
    index: int
    """The entry's index in the evidence log (a page's cursor)."""
    event: AccessEvent


class AccessLog:
    def __init__(self, store: EvidenceLogStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self, access_id: str, operator: str, method: str, target: str, code: str, reason: str
    ) -> AccessEvent:
        """Appends one entry, committed when this returns."""
        event = AccessEvent(
            access_id=access_id,
            at=self._clock.now(),
            operator=operator,
            method=method,
            target=target,
            code=code,
            reason=reason,
        )
        await self._store.append_evidence([access_entry(event)])
        return event

    async def page(self, after: int, limit: int) -> Sequence[LoggedAccess]:
        entries = await self._store.log_entries_of_kind(EntryKind.OPERATOR_ACCESS, after, limit)
        return [LoggedAccess(e.index, access_from_entry(parse(e.body)[1])) for e in entries]
