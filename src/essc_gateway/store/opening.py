"""Opens the store a configuration names: SQLite (the embedded default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from opentelemetry.trace import Tracer

from essc_gateway.evidence.merkle import TreeHash
from essc_gateway.evidence.ports import EvidenceLogStore
from essc_gateway.keys.ports import KeyStore
from essc_gateway.liability.ports import LedgerStore
from essc_gateway.privacy.ports import ErasureJobStore, PrivacyStore
from essc_gateway.store.append_queue import AppendObserver
from essc_gateway.store.base import Store
from essc_gateway.store.cluster import ClusterStore
from essc_gateway.store.health import WriteHealth
from essc_gateway.store.location import StoreLocation
from essc_gateway.store.postgres import PostgresStore
from essc_gateway.store.sqlite import SqliteStore


class GatewayStore(
    Store,
    LedgerStore,
    ClusterStore,
    EvidenceLogStore,
    KeyStore,
    PrivacyStore,
    ErasureJobStore,
    Protocol,
):
    """Everything the gateway keeps, in one database, whichever adapter."""

    @property
    def health(self) -> WriteHealth:
        """Whether writes succeed right now; told by every write."""
        ...

    async def probe_write(self) -> None:
        """One small write, to learn whether the store writes again (raises StoreUnavailable
        while it cannot)."""
        ...

    async def drain_appends(self) -> None:
        """Waits until ledger appends in flight are committed."""
        ...

    def observe_appends(self, observer: AppendObserver) -> None:
        """Told of every group-committed batch of liability records."""
        ...


async def open_store(
    location: StoreLocation,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    tracer: Tracer | None = None,
    evidence_hash: TreeHash = TreeHash.SM3,
) -> GatewayStore:
    if isinstance(location, Path):
        return await SqliteStore.open(
            location, synchronous, tracer=tracer, evidence_hash=evidence_hash
        )
    return await PostgresStore.open(location, tracer=tracer, evidence_hash=evidence_hash)
