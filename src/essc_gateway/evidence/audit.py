"""Auditing the evidence log in the database (`essc-gateway ledger verify`, VerifyLedger):
every leaf recomputed from its entry, every stored node and the head recomputed from the
leaves, every published checkpoint's signature and root checked at its size, each liability
record's row compared with its entry, and any checkpoint the auditor kept found in the log.
The offline verifier checks bundles; this checks the whole store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from essc_gateway.evidence.entries import EntryKind, parse, record_from_entry
from essc_gateway.evidence.log import LogEntry
from essc_gateway.evidence.merkle import Frontier, TreeHash
from essc_gateway.evidence.ports import EvidenceLogStore
from essc_gateway.evidence.signed_note import NoteError, NoteVerifier
from essc_gateway.liability.ports import LedgerStore

_CHUNK = 5000


class AuditStore(EvidenceLogStore, LedgerStore, Protocol):
    """The evidence log and the liability tables of one store."""


@dataclass(frozen=True, slots=True)
class LogAudit:
    intact: bool
    entries: int
    root: str
    """Hex of the recomputed root."""
    problems: tuple[str, ...]


async def audit_log(
    store: AuditStore,
    verifier: NoteVerifier | None,
    kept_checkpoints: Sequence[bytes] = (),
) -> LogAudit:
    """Walks the whole log (in chunks). `verifier` checks the published checkpoints'
    signatures; `kept_checkpoints` (signed notes the auditor kept) must be in the log."""
    head = await store.log_head()
    problems: list[str] = []
    kept = _open_kept(verifier, kept_checkpoints, problems)
    published = {c.size: c for c in await store.checkpoints()}
    walk = _Walk(store, head.tree_hash, set(kept) | set(published), problems)
    await walk.run(head.size)
    if walk.frontier.root() != head.root or walk.frontier.size != head.size:
        problems.append("the log's head does not match its entries")
    for size, checkpoint in sorted(published.items()):
        problems += _checkpoint_problems(
            size, checkpoint.root, checkpoint.note, walk.roots, verifier
        )
    for size, root in sorted(kept.items()):
        if size > head.size:
            problems.append(f"kept checkpoint of size {size}: the log is shorter ({head.size})")
        elif walk.roots.get(size) != root:
            problems.append(f"kept checkpoint of size {size}: history was rewritten since")
    if walk.records != await store.liability_record_count(below_index=head.size):
        problems.append("liability records exist outside the evidence log")
    return LogAudit(not problems, head.size, walk.frontier.root().hex(), tuple(problems))


def _open_kept(
    verifier: NoteVerifier | None, notes: Sequence[bytes], problems: list[str]
) -> dict[int, bytes]:
    kept: dict[int, bytes] = {}
    if notes and verifier is None:
        problems.append("kept checkpoints need the verifier key")
        return kept
    for number, note in enumerate(notes, start=1):
        assert verifier is not None
        try:
            checkpoint = verifier.open_checkpoint(note)
        except NoteError as error:
            problems.append(f"kept checkpoint {number}: {error}")
            continue
        kept[checkpoint.size] = checkpoint.root
    return kept


class _Walk:
    """The log recomputed from its entries, chunk by chunk."""

    def __init__(
        self, store: AuditStore, tree_hash: TreeHash, sizes: set[int], problems: list[str]
    ) -> None:
        self._store = store
        self._tree_hash = tree_hash
        self._sizes = sizes
        self._problems = problems
        self.frontier = Frontier(tree_hash)
        self.roots: dict[int, bytes] = {0: tree_hash.empty_root()}
        self.records = 0

    async def run(self, size: int) -> None:
        for start in range(0, size, _CHUNK):
            end = min(start + _CHUNK, size)
            entries = await self._store.log_range(start, end)
            if [e.index for e in entries] != list(range(start, end)):
                self._problems.append(f"entries missing between {start} and {end}")
                return
            await self._chunk(entries)
            self.records += await _check_records(self._store, entries, self._problems)

    async def _chunk(self, entries: Sequence[LogEntry]) -> None:
        completed = []
        for entry in entries:
            leaf = self._tree_hash.leaf(entry.body)
            if leaf != entry.leaf_hash:
                self._problems.append(f"entry {entry.index}: its stored leaf hash does not match")
            completed += self.frontier.append(leaf)
            if self.frontier.size in self._sizes:
                self.roots[self.frontier.size] = self.frontier.root()
        if completed:
            stored = await self._store.log_nodes([node for node, _ in completed])
            for node, value in completed:
                if stored.get(node) != value:
                    self._problems.append(f"tree node {node.level}/{node.index} does not match")


def _checkpoint_problems(
    size: int,
    root: bytes,
    note: bytes,
    roots: dict[int, bytes],
    verifier: NoteVerifier | None,
) -> list[str]:
    problems = []
    if roots.get(size) != root:
        problems.append(f"published checkpoint of size {size}: not the root of the log then")
    if verifier is not None:
        try:
            opened = verifier.open_checkpoint(note)
        except NoteError as error:
            problems.append(f"published checkpoint of size {size}: {error}")
        else:
            if (opened.size, opened.root) != (size, root):
                problems.append(f"published checkpoint of size {size}: its note says otherwise")
    return problems


async def _check_records(
    store: AuditStore, entries: Sequence[LogEntry], problems: list[str]
) -> int:
    """Compares the row indexing each liability record with its log entry (an edited row
    would hide a record from a bank's or a holder's report); returns how many."""
    logged = {e.ref: e for e in entries if e.kind is EntryKind.LIABILITY_RECORD}
    if not logged:
        return 0
    for row in await store.liability_index(sorted(logged)):
        entry = logged[row.request_id]
        try:
            record = record_from_entry(parse(entry.body)[1])
        except (KeyError, ValueError, TypeError):
            problems.append(f"entry {entry.index}: a liability record that cannot be read")
            continue
        stored = (row.bank_id, row.at, row.arrived_at, row.holder_token, row.log_index)
        if stored != (
            record.bank_id,
            record.at,
            record.arrived_at,
            record.holder_token,
            entry.index,
        ):
            problems.append(f"liability record {row.request_id}: its row was edited")
    return len(logged)
