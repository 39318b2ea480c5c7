"""The evidence log's operations for operators and auditors: checkpoints, proofs, bundles
and the audit of the store (used by OperatorService and the CLI alike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from essc_gateway.errors import ErrorReason, FieldViolation, InvalidRequest, NotFound
from essc_gateway.evidence.audit import AuditStore, LogAudit, audit_log
from essc_gateway.evidence.bundle import BundleBuilder
from essc_gateway.evidence.checkpoints import Checkpointer
from essc_gateway.evidence.entries import EntryKind
from essc_gateway.evidence.log import LogEntry, StoredCheckpoint
from essc_gateway.evidence.proofs import ProofError, Prover
from essc_gateway.liability.holder_records import liability_records_of
from essc_gateway.service.vault import Vault


@dataclass(frozen=True, slots=True)
class InclusionProof:
    entry: LogEntry
    proof: list[bytes]
    checkpoint: StoredCheckpoint


class EvidenceService:
    def __init__(
        self, store: AuditStore, checkpointer: Checkpointer, prover: Prover, vault: Vault
    ) -> None:
        self._store = store
        self._vault = vault
        self.checkpointer = checkpointer
        self._prover = prover
        self._bundles = BundleBuilder(store, prover, checkpointer)

    async def inclusion(self, request_id: str) -> InclusionProof:
        """The proof that the record of `request_id` is in the log of a checkpoint of now."""
        found = await self._store.log_entries_for(EntryKind.LIABILITY_RECORD, [request_id])
        if not found:
            raise NotFound(
                "no liability record with this ledger_request_id",
                reason=ErrorReason.LEDGER_RECORD_NOT_FOUND,
            )
        checkpoint = await self.checkpointer.publish()
        proof = await self._prover.inclusion(found[0].index, checkpoint.size)
        return InclusionProof(found[0], proof, checkpoint)

    async def consistency(self, old_size: int, new_size: int) -> tuple[list[bytes], bytes]:
        """The proof from `old_size` to the checkpoint of `new_size` (0: one made now), and
        that checkpoint's note."""
        checkpoint = (
            await self.checkpointer.publish()
            if new_size == 0
            else next((c for c in await self._store.checkpoints() if c.size == new_size), None)
        )
        if checkpoint is None:
            raise NotFound(
                "no checkpoint of this size was published",
                reason=ErrorReason.CHECKPOINT_NOT_FOUND,
            )
        try:
            proof = await self._prover.consistency(old_size, checkpoint.size)
        except ProofError as error:
            raise InvalidRequest([FieldViolation("old_size", str(error), "OUT_OF_RANGE")]) from None
        return proof, checkpoint.note

    async def bundle(self, request_ids: Sequence[str], known_sizes: Sequence[int]) -> bytes:
        return await self._bundles.build(request_ids, known_sizes)

    async def request_ids(
        self,
        since: datetime,
        until: datetime,
        bank_id: str | None,
        holder_id: str | None,
    ) -> list[str]:
        """The failed requests of a bank (and of one holder: a complaint) in a range."""
        records = await liability_records_of(
            self._store, self._vault, since, until, bank_id, holder_id
        )
        return [r.request_id for r in records]

    async def audit(self, kept_checkpoints: Sequence[bytes]) -> LogAudit:
        verifier = self.checkpointer.verifier
        return await audit_log(self._store, verifier, kept_checkpoints)
