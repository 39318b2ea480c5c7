"""The operators' gate: a call is let through only if one of the operator's roles admits the
method, and every call, let through or not, is in the access log (A13(1))."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from essc_gateway.access.log import AccessLog, access_target
from essc_gateway.access.roles import OperatorRole, admits
from essc_gateway.errors import ErrorReason, PermissionDenied

log = logging.getLogger(__name__)

ADMITTED = "ADMITTED"
"""The code of the entry written before a call runs: its answer follows under the same id."""
UNIDENTIFIED = "-"


class OperatorGate:
    def __init__(self, roles: Mapping[str, frozenset[OperatorRole]], access_log: AccessLog) -> None:
        self._roles = roles
        self._log = access_log

    @staticmethod
    def new_access_id() -> str:
        """The id a call's entries share: made before its admission is written, so that an
        answer (a cancellation during the admission included) pairs with it."""
        return uuid.uuid4().hex

    async def admit(self, access_id: str, operator: str, method: str, request: object) -> None:
        """Records the call's admission under `access_id`. Raises PermissionDenied
        (ROLE_NOT_PERMITTED) outside the operator's roles; a store that cannot write the
        entry fails the call before it does anything (nothing unlogged happens)."""
        if not admits(method, self._roles.get(operator, frozenset())):
            raise PermissionDenied(
                f"the operator's roles do not admit {method}",
                reason=ErrorReason.ROLE_NOT_PERMITTED,
                metadata={"method": method},
            )
        await self._log.record(access_id, operator, method, access_target(request), ADMITTED, "")

    async def answered(
        self,
        access_id: str | None,
        operator: str | None,
        method: str,
        request: object,
        code: str,
        reason: str,
    ) -> None:
        """Records a call's answer (or its refusal, access_id None). Never raises: the
        answer stands; a store that cannot write is logged (the admission entry of an
        admitted call is already committed)."""
        try:
            await self._log.record(
                access_id or uuid.uuid4().hex,
                operator or UNIDENTIFIED,
                method,
                access_target(request),
                code,
                reason,
            )
        except Exception as error:
            log.error(
                "operator access not recorded (%s %s %s): %s",
                operator or UNIDENTIFIED, method, code, type(error).__name__,
            )  # fmt: skip
