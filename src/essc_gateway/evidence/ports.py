"""What the evidence log needs from storage (both stores; appends happen inside the stores'
own writes, see `log.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from essc_gateway.evidence.entries import Entry, EntryKind
from essc_gateway.evidence.log import LogEntry, LogHead, StoredCheckpoint
from essc_gateway.evidence.merkle import NodeId


class EvidenceLogStore(Protocol):
    async def log_head(self) -> LogHead:
        """The log's size and root now (appends queued by this process included)."""
        ...

    async def log_entries(self, indices: Sequence[int]) -> list[LogEntry]: ...

    async def log_entries_for(self, kind: EntryKind, refs: Sequence[str]) -> list[LogEntry]:
        """Entries of `kind` about any of `refs` (request ids, window ids...), by index."""
        ...

    async def log_range(self, start: int, end: int) -> list[LogEntry]:
        """Entries with start <= index < end, by index."""
        ...

    async def append_evidence(self, entries: Sequence[Entry]) -> list[LogEntry]:
        """Appends entries that stand alone (no table row of their own), in one commit."""
        ...

    async def log_entries_of_kind(self, kind: EntryKind, after: int, limit: int) -> list[LogEntry]:
        """Up to `limit` entries of `kind` with an index above `after`, by index."""
        ...

    async def log_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Stored hashes of complete subtrees (level 0: leaf hashes)."""
        ...

    async def save_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Keeps a published checkpoint; False if one of its size exists already."""
        ...

    async def checkpoints(self, since: datetime | None = None) -> list[StoredCheckpoint]:
        """Checkpoints published since `since` (all if None), by size."""
        ...

    async def latest_checkpoint(self) -> StoredCheckpoint | None: ...
