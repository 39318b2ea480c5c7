"""Inclusion and consistency proofs, and roots at any size, from the stored tree: one read
of O(log n) stored nodes each, whatever the log's size."""

from __future__ import annotations

from essc_gateway.evidence.merkle import (
    NodeId,
    TreeHash,
    plan_consistency,
    plan_inclusion,
    root_plan,
)
from essc_gateway.evidence.ports import EvidenceLogStore


class ProofError(ValueError):
    """A proof asked for sizes or leaves the log does not have."""


class Prover:
    def __init__(self, store: EvidenceLogStore, tree_hash: TreeHash) -> None:
        self._store = store
        self.tree_hash = tree_hash

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        try:
            plan = plan_inclusion(index, size)
        except ValueError as error:
            raise ProofError(str(error)) from None
        return plan.assemble(await self._fetch(plan.nodes, size), self.tree_hash)

    async def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        try:
            plan = plan_consistency(old_size, new_size)
        except ValueError as error:
            raise ProofError(str(error)) from None
        return plan.assemble(await self._fetch(plan.nodes, new_size), self.tree_hash)

    async def root_at(self, size: int) -> bytes:
        plan = root_plan(size)
        return plan.assemble(await self._fetch(plan.nodes, size), self.tree_hash)[0]

    async def _fetch(self, nodes: tuple[NodeId, ...], size: int) -> dict[NodeId, bytes]:
        head = await self._store.log_head()
        if size > head.size:
            raise ProofError(f"the log has {head.size} entries, not {size}")
        found = await self._store.log_nodes(nodes)
        if len(found) != len(nodes):
            raise ProofError("the stored tree is missing nodes: run `essc-gateway ledger verify`")
        return found
