"""Replicas register in the store and renew a heartbeat; an operator lists them, and a
replica whose heartbeat stopped counts as dead (its outages are closed by the next replica
to start; its issuance and forward leases run out on their own)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import replace
from datetime import timedelta

from essc_gateway.clock import Clock
from essc_gateway.store.cluster import ClusterStore, ReplicaInfo

HEARTBEAT_INTERVAL = 2.0
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
"""A replica silent this long is dead: five heartbeats missed."""


class ReplicaRegistry:
    def __init__(self, store: ClusterStore, clock: Clock, address: str, version: str) -> None:
        now = clock.now()
        self._store = store
        self.clock = clock
        self.me = ReplicaInfo(
            replica_id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            host=socket.gethostname(),
            pid=os.getpid(),
            address=address,
            version=version,
            started_at=now,
            heartbeat_at=now,
        )

    def serving_at(self, address: str) -> None:
        """Once the port is known (port 0 picks one at start)."""
        self.me = replace(self.me, address=address)

    async def beat(self) -> None:
        self.me = replace(self.me, heartbeat_at=self.clock.now())
        await self._store.heartbeat(self.me)

    async def alive(self) -> list[ReplicaInfo]:
        now = self.clock.now()
        return [r for r in await self._store.replicas() if r.alive_at(now, HEARTBEAT_TIMEOUT)]

    async def all(self) -> list[ReplicaInfo]:
        return await self._store.replicas()

    async def leave(self) -> None:
        await self._store.forget_replica(self.me.replica_id)
