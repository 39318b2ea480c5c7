"""OperatorService's evidence log RPCs, protobuf <-> `EvidenceService` (mixed into the
operator servicer)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc

from essc.gateway.v1 import operator_pb2 as pb
from essc_gateway.errors import FieldViolation, InvalidRequest
from essc_gateway.evidence.service import EvidenceService
from essc_gateway.transport.requests import timestamp_in_range

Context = grpc.aio.ServicerContext[Any, Any]
_MAX_BUNDLE_REQUESTS = 10_000


class EvidenceRpcs:
    def __init__(self, evidence: EvidenceService) -> None:
        self._evidence = evidence

    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: Context
    ) -> pb.GetCheckpointResponse:
        checkpoint = await self._evidence.checkpointer.publish()
        return pb.GetCheckpointResponse(
            checkpoint=checkpoint.note.decode(),
            tree_size=checkpoint.size,
            verifier_key=self._evidence.checkpointer.verifier_key,
        )

    async def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: Context
    ) -> pb.GetInclusionProofResponse:
        if not request.ledger_request_id:
            raise InvalidRequest([FieldViolation("ledger_request_id", "is required", "REQUIRED")])
        found = await self._evidence.inclusion(request.ledger_request_id)
        return pb.GetInclusionProofResponse(
            leaf_index=found.entry.index,
            entry=found.entry.body,
            proof=found.proof,
            checkpoint=found.checkpoint.note.decode(),
            tree_size=found.checkpoint.size,
        )

    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: Context
    ) -> pb.GetConsistencyProofResponse:
        if request.old_size < 1:
            raise InvalidRequest([FieldViolation("old_size", "must be at least 1", "OUT_OF_RANGE")])
        if request.new_size < 0:
            raise InvalidRequest(
                [FieldViolation("new_size", "must not be negative", "OUT_OF_RANGE")]
            )
        proof, note = await self._evidence.consistency(request.old_size, request.new_size)
        return pb.GetConsistencyProofResponse(proof=proof, checkpoint=note.decode())

    async def GetEvidenceBundle(
        self, request: pb.GetEvidenceBundleRequest, context: Context
    ) -> pb.GetEvidenceBundleResponse:
        request_ids = list(request.ledger_request_ids)
        if not request_ids:
            request_ids = await self._chosen_requests(request)
        if len(request_ids) > _MAX_BUNDLE_REQUESTS:
            raise InvalidRequest(
                [
                    FieldViolation(
                        "ledger_request_ids",
                        f"at most {_MAX_BUNDLE_REQUESTS} requests per bundle",
                        "TOO_MANY",
                    )
                ]
            )
        bundle = await self._evidence.bundle(request_ids, list(request.known_sizes))
        return pb.GetEvidenceBundleResponse(bundle=bundle, requests=len(set(request_ids)))

    async def _chosen_requests(self, request: pb.GetEvidenceBundleRequest) -> list[str]:
        violations = [
            FieldViolation(name, "is required without ledger_request_ids", "REQUIRED")
            for name in ("since", "until")
            if not request.HasField(name)
        ]
        if violations:
            raise InvalidRequest(violations)
        since, until = _when(request.since, "since"), _when(request.until, "until")
        if until <= since:
            raise InvalidRequest([FieldViolation("until", "must be after since", "INVALID")])
        return await self._evidence.request_ids(
            since, until, request.bank_id or None, request.holder_social_security_number or None
        )

    async def VerifyLedger(
        self, request: pb.VerifyLedgerRequest, context: Context
    ) -> pb.VerifyLedgerResponse:
        audit = await self._evidence.audit([note.encode() for note in request.kept_checkpoints])
        return pb.VerifyLedgerResponse(
            intact=audit.intact, entries=audit.entries, root=audit.root, problems=audit.problems
        )


def _when(ts: Any, field: str) -> datetime:
    if not timestamp_in_range(ts):
        raise InvalidRequest([FieldViolation(field, "is not a valid timestamp", "OUT_OF_RANGE")])
    moment: datetime = ts.ToDatetime(tzinfo=UTC)
    return moment
