"""What replicas share through the store besides the records: which shared state changed
(so that every replica reloads it within a second), forced circuits, the replicas
themselves (heartbeats), one outage per platform operation, and the banks' rate buckets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from essc_gateway.liability.model import Outage


class SharedTopic(StrEnum):
    """State every replica holds in memory and reloads when another replica changes it."""

    WINDOWS = "windows"
    INCIDENTS = "incidents"
    CIRCUITS = "circuits"
    OUTAGES = "outages"
    KEYS = "keys"
    HOLDERS = "holders"
    """A holder erased: every replica drops the holder keys it holds in memory."""


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    replica_id: str
    host: str
    pid: int
    address: str
    """Where it serves banks (host:port)."""
    version: str
    started_at: datetime
    heartbeat_at: datetime

    def alive_at(self, now: datetime, timeout: timedelta) -> bool:
        return now - self.heartbeat_at < timeout


@dataclass(frozen=True, slots=True)
class RateGrant:
    granted: int
    """Tokens taken from the bank's bucket (0 when it is empty)."""
    wait: timedelta
    """When nothing was granted: until the next token."""


ChangeListener = Callable[[SharedTopic], None]


class ClusterStore(Protocol):
    async def state_versions(self) -> Mapping[SharedTopic, int]:
        """How many times each topic changed: a replica reloads the topics whose count moved.
        Every write of a topic (windows, incidents, circuits, outages) counts one."""
        ...

    async def listen(self, listener: ChangeListener) -> None:
        """Calls `listener` soon after any replica changes a topic (PostgreSQL: NOTIFY), on
        top of polling `state_versions`; a store without notifications does nothing."""
        ...

    async def force_circuit(self, operation: str, until: datetime, now: datetime) -> None: ...

    async def release_circuit(self, operation: str) -> None: ...

    async def forced_circuits(self) -> Mapping[str, datetime]:
        """Operation -> forced open until."""
        ...

    async def heartbeat(self, replica: ReplicaInfo) -> None:
        """Registers the replica or renews its heartbeat (`replica.heartbeat_at`). Committed
        but lazy (not waited to be durable): a beat lost in a crash is the next one's to
        make, and a replica whose host crashed is not alive anyway."""
        ...

    async def forget_replica(self, replica_id: str) -> None:
        """A replica that stops cleanly leaves the list."""
        ...

    async def replicas(self) -> list[ReplicaInfo]: ...

    async def open_outage(self, outage: Outage, holder: str) -> Outage:
        """Opens `outage` unless its operation has one open already (whichever replica
        opened it): then that one, which the caller joins. One open outage per operation."""
        ...

    async def add_to_outage(
        self,
        outage_id: str,
        status_counts: Mapping[str, int],
        affected: Mapping[str, int],
        last_failure_at: datetime,
        reached: bool,
        holder: str,
    ) -> None:
        """Adds one replica's counts since its last report to an outage (never overwrites
        another replica's); `holder` is the replica that saw it last."""
        ...

    async def close_outage(self, outage_id: str, ended_at: datetime) -> bool:
        """Ends an open outage; False if it had ended already (another replica closed it)."""
        ...

    async def close_outages_held_by_none_of(self, live_replicas: frozenset[str]) -> int:
        """At start: outages whose holder is not alive end at their last failure; those a
        live replica holds stay open. Returns how many were closed."""
        ...

    async def take_rate_tokens(
        self, bank_id: str, wanted: int, now: datetime, per_second: float, burst: float
    ) -> RateGrant:
        """Takes up to `wanted` tokens from the bank's bucket, shared by all replicas."""
        ...
