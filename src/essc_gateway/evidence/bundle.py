"""Evidence bundles: everything a third party needs to check the clause of some failed
requests without our database: their liability records and amendments, every version of the
windows, the incidents and the outages they name, each with its inclusion proof against one
signed checkpoint, and consistency proofs from checkpoints published earlier. Checked by
`verify.py` (`essc-gateway evidence verify`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import Any

from essc_gateway.evidence.checkpoints import Checkpointer
from essc_gateway.evidence.entries import EntryKind, parse
from essc_gateway.evidence.log import LogEntry
from essc_gateway.evidence.ports import EvidenceLogStore
from essc_gateway.evidence.proofs import Prover

FORMAT = "essc-evidence-bundle/1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class BundleBuilder:
    def __init__(self, store: EvidenceLogStore, prover: Prover, checkpointer: Checkpointer) -> None:
        self._store = store
        self._prover = prover
        self._checkpointer = checkpointer

    async def build(self, request_ids: Sequence[str], known_sizes: Iterable[int] = ()) -> bytes:
        """The bundle of `request_ids` against a checkpoint published now, with consistency
        proofs from each of `known_sizes` (sizes of checkpoints the reader already holds)."""
        checkpoint = await self._checkpointer.publish()
        size = checkpoint.size
        wanted = sorted(set(request_ids))
        entries: dict[int, LogEntry] = {}

        async def add(kind: EntryKind, refs: Iterable[str]) -> list[dict[str, Any]]:
            refs = sorted({r for r in refs if r})
            if not refs:
                return []
            found = [e for e in await self._store.log_entries_for(kind, refs) if e.index < size]
            entries.update((e.index, e) for e in found)
            return [parse(e.body)[1] for e in found]

        records = await add(EntryKind.LIABILITY_RECORD, wanted)
        amendments = await add(EntryKind.AMENDMENT, wanted)
        await add(EntryKind.WINDOW_VERSION, (r["window_id"] for r in records))
        await add(
            EntryKind.INCIDENT,
            [r["incident_id"] for r in records] + [a["incident_id"] for a in amendments],
        )
        outage_ids = [r["outage_id"] for r in records]
        await add(EntryKind.OUTAGE_OPENED, outage_ids)
        await add(EntryKind.OUTAGE_CLOSED, outage_ids)
        bundle = {
            "format": FORMAT,
            "tree_hash": self._prover.tree_hash.value,
            "checkpoint": checkpoint.note.decode(),
            "requests": wanted,
            "entries": [
                {
                    "index": entry.index,
                    "body": entry.body.decode(),
                    "proof": [_b64(h) for h in await self._prover.inclusion(entry.index, size)],
                }
                for entry in sorted(entries.values(), key=lambda e: e.index)
            ],
            "consistency": [
                {
                    "old_size": old,
                    "proof": [_b64(h) for h in await self._prover.consistency(old, size)],
                }
                for old in sorted(set(known_sizes))
                if 0 < old <= size
            ],
        }
        return json.dumps(bundle, indent=1, ensure_ascii=False).encode()
