"""What someone with write access to the database can do to the evidence, done for real on
either adapter: edit an entry, or rewrite history whole (edit, then recompute every leaf,
node and the head, as a careful forger would), or cut the log short."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from essc_gateway.evidence.merkle import Frontier, TreeHash
from essc_gateway.store.location import StoreLocation
from tests.sql import execute, fetch

Edit = Callable[[dict[str, Any]], dict[str, Any]]


async def entries(database: StoreLocation) -> list[dict[str, Any]]:
    return await fetch(database, "SELECT idx, kind, ref, body FROM evidence_log ORDER BY idx")


def _body(row: dict[str, Any]) -> bytes:
    return bytes(row["body"])


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def edit_entry(database: StoreLocation, kind: str, ref: str, edit: Edit) -> None:
    """Changes one entry's body in place, nothing else (a naive forger)."""
    for row in await entries(database):
        if row["kind"] == kind and row["ref"] == ref:
            changed = _canonical(edit(json.loads(_body(row))))
            await execute(
                database, "UPDATE evidence_log SET body = ? WHERE idx = ?", changed, row["idx"]
            )
            return
    raise AssertionError(f"no {kind} entry about {ref}")


async def rewrite_history(
    database: StoreLocation,
    kind: str | None = None,
    ref: str | None = None,
    edit: Edit | None = None,
    keep: int | None = None,
    tree_hash: TreeHash = TreeHash.SM3,
) -> None:
    """Edits an entry (or none) and/or keeps only the first `keep` entries, then rebuilds
    the whole tree and its head from the bodies, and drops the published checkpoints (they
    no longer match): the database alone then looks perfectly consistent."""
    rows = await entries(database)
    if keep is not None:
        rows = rows[:keep]
    bodies = []
    for row in rows:
        body = _body(row)
        if edit is not None and row["kind"] == kind and row["ref"] == ref:
            body = _canonical(edit(json.loads(body)))
        bodies.append((row, body))
    frontier = Frontier(tree_hash)
    await execute(database, "DELETE FROM evidence_nodes")
    await execute(database, "DELETE FROM evidence_log")
    await execute(database, "DELETE FROM evidence_checkpoints")
    for row, body in bodies:
        leaf = tree_hash.leaf(body)
        await execute(
            database,
            "INSERT INTO evidence_log (idx, kind, ref, body, leaf_hash) VALUES (?, ?, ?, ?, ?)",
            row["idx"],
            row["kind"],
            row["ref"],
            body,
            leaf,
        )
        for node, value in frontier.append(leaf):
            await execute(
                database,
                "INSERT INTO evidence_nodes (level, idx, hash) VALUES (?, ?, ?)",
                node.level,
                node.index,
                value,
            )
    await execute(
        database, "UPDATE evidence_head SET frontier = ? WHERE id = 1", frontier.to_bytes()
    )
