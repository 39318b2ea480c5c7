"""The evidence log's records as the stores keep them, and the one step both stores take to
append: leaf hashes, the tree nodes the new leaves complete, the new frontier. The stores run
it inside the transaction that writes the facts, under a lock on the log's head, so that
replicas appending at once make one tree with no fork and no gap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from essc_gateway.evidence.entries import Entry, EntryKind
from essc_gateway.evidence.merkle import Frontier, NodeId, TreeHash


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    kind: EntryKind
    ref: str
    body: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class LogHead:
    size: int
    root: bytes
    tree_hash: TreeHash


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: bytes
    """The signed note (C2SP tlog-checkpoint), as published."""
    published_at: datetime


@dataclass(frozen=True, slots=True)
class Appended:
    entries: list[LogEntry]
    nodes: list[tuple[NodeId, bytes]]
    """Complete subtrees of level >= 1 the entries finished."""
    frontier: bytes
    size: int


def append_to(frontier: Frontier, entries: Sequence[Entry]) -> Appended:
    """Appends `entries` to `frontier` (changed in place)."""
    tree_hash = frontier.tree_hash
    logged, nodes = [], []
    for entry in entries:
        leaf_hash = tree_hash.leaf(entry.body)
        logged.append(LogEntry(frontier.size, entry.kind, entry.ref, entry.body, leaf_hash))
        nodes.extend(frontier.append(leaf_hash))
    return Appended(logged, nodes, frontier.to_bytes(), frontier.size)


class TreeHashMismatch(ValueError):
    """The log was begun with another hash: a log's hash never changes."""
