"""OperatorService's access log RPC (mixed into the operator servicer)."""

from __future__ import annotations

from typing import Any

import grpc

from essc.gateway.v1 import operator_pb2 as pb
from essc_gateway.access.log import AccessLog
from essc_gateway.errors import FieldViolation, InvalidRequest
from essc_gateway.transport.responses import timestamp

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PAGE = 1000
DEFAULT_PAGE = 100


class AccessRpcs:
    def __init__(self, access_log: AccessLog) -> None:
        self._access_log = access_log

    async def ListAccessLog(
        self, request: pb.ListAccessLogRequest, context: Context
    ) -> pb.ListAccessLogResponse:
        violations = []
        if request.after < 0:
            violations.append(FieldViolation("after", "must not be negative", "OUT_OF_RANGE"))
        if not 0 <= request.limit <= MAX_PAGE:
            violations.append(FieldViolation("limit", f"must be 0-{MAX_PAGE}", "OUT_OF_RANGE"))
        if violations:
            raise InvalidRequest(violations)
        page = await self._access_log.page(request.after, request.limit or DEFAULT_PAGE)
        return pb.ListAccessLogResponse(
            entries=[
                pb.AccessLogEntry(
                    access_id=item.event.access_id,
                    at=timestamp(item.event.at),
                    operator_id=item.event.operator,
                    method=item.event.method,
                    target=item.event.target,
                    code=item.event.code,
                    reason=item.event.reason,
                    log_index=item.index,
                )
                for item in page
            ],
            next_cursor=page[-1].index if page else request.after,
        )
