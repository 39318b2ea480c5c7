"""Verifying the ledger: the chain must be intact and contain any head published earlier."""

from __future__ import annotations

from dataclasses import dataclass

from essc_gateway.liability.chain import GENESIS, verify_chain
from essc_gateway.liability.ports import LedgerStore


@dataclass(frozen=True, slots=True)
class LedgerVerification:
    intact: bool
    records: int
    head: str
    problems: tuple[str, ...]


async def verify_ledger(store: LedgerStore, expected_head: str = "") -> LedgerVerification:
    """Walks the whole chain. `expected_head` (from a monthly statement) must still be in it:
    a chain cut short after that head was published would otherwise look intact."""
    records = await store.all_liability_records()
    problems = [f"seq {p.seq}: {p.problem}" for p in verify_chain(records)]
    head = records[-1].row_hash if records else GENESIS
    if (
        expected_head
        and expected_head != GENESIS
        and all(r.row_hash != expected_head for r in records)
    ):
        problems.append("the expected head is not in the chain: records were removed")
    return LedgerVerification(not problems, len(records), head, tuple(problems))
