"""Circuits an operator forces open or releases, for the whole cluster: the change is
stored first (every replica applies it within a second, see `shared_state`), then applied
here at once."""

from __future__ import annotations

from datetime import datetime

from essc_gateway.clock import Clock
from essc_gateway.store.cluster import ClusterStore
from essc_gateway.upstream.breaker import Breakers


class ForcedCircuits:
    def __init__(self, store: ClusterStore, breakers: Breakers, clock: Clock) -> None:
        self._store = store
        self._breakers = breakers
        self._clock = clock

    async def force_open(self, operations: list[str], until: datetime) -> None:
        now = self._clock.now()
        for operation in operations:
            await self._store.force_circuit(operation, until, now)
            self._breakers[operation].force_open(until)

    async def release(self, operations: list[str]) -> None:
        for operation in operations:
            await self._store.release_circuit(operation)
            self._breakers[operation].release()

    async def reload(self) -> None:
        """Applies the cluster's forced circuits here (another replica changed them)."""
        self._breakers.apply_forced(await self._store.forced_circuits())
