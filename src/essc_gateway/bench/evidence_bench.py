"""What the evidence log costs (issue 12's figures in `make bench`):

- append throughput: liability records committed durably per second, in transactions of
  `batch` records (as group commit makes them), with their log entries and tree nodes and
  without, on one connection to SQLite (synchronous=FULL) and to PostgreSQL;
- an inclusion proof in a log of 10 000 000 entries: a synthetic SQLite log (leaf and node
  hashes random, the shape and indexes real), built once and kept; the time is what the
  gateway spends: plan, one read of the stored nodes, assembly."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from essc_gateway.bench.cluster_bench import fresh_database
from essc_gateway.evidence.merkle import HASH_SIZE, TreeHash
from essc_gateway.evidence.proofs import Prover
from essc_gateway.liability.model import Clause, LiabilityRecord
from essc_gateway.store import postgres_ledger, sqlite_ledger
from essc_gateway.store.location import PostgresDatabase
from essc_gateway.store.postgres import PostgresStore
from essc_gateway.store.rows import RECORD_COLUMNS
from essc_gateway.store.sqlite import SqliteStore, configure
from essc_gateway.store.sqlite_util import text_of
from essc_gateway.upstream.attempts import PlatformAttempt, attempt_to_dict

_NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
APPEND_BATCH = 64
"""Records per transaction: what group commit gathers under load."""


def _record() -> LiabilityRecord:
    """A platform failure's record as the gateway writes it (evidence, three attempts)."""
    return LiabilityRecord(
        seq=0,
        request_id=uuid.uuid4().hex,
        trace_id=uuid.uuid4().hex,
        bank_id="bench-bank",
        rpc="Verify",
        at=_NOW,
        arrived_at=_NOW,
        deadline_at=_NOW,
        status_code="UNAVAILABLE",
        reason="PLATFORM_UNAVAILABLE",
        clause=Clause.A16_1_B,
        evidence={
            "operation": "CheckRealName",
            "outcome": "REJECTED",
            "attempts": "3",
            "platform_reached": "true",
            "upstream_code": "UNAVAILABLE",
            "status_code": "UNAVAILABLE",
            "reason": "PLATFORM_UNAVAILABLE",
            "outage_started_at": _NOW.isoformat(),
        },
        attempts=tuple(
            PlatformAttempt("CheckRealName", _NOW, 12.5, "UNAVAILABLE", "REJECTED", "OUTAGE", 50.0)
            for _ in range(3)
        ),
        outage_id="out-0123456789abcdef",
        holder_token=uuid.uuid4().hex * 2,
    )


_SQLITE_INSERT = (
    f"INSERT INTO liability_records ({RECORD_COLUMNS.removeprefix('seq, ')}, prev_hash, "  # noqa: S608
    "row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '')"
)
_PG_INSERT = (
    f"INSERT INTO liability_records ({RECORD_COLUMNS}, prev_hash, row_hash) VALUES "  # noqa: S608
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, "
    "'', '')"
)


async def _timed(batches: Callable[[], Awaitable[int]], seconds: float) -> float:
    """Records per second that `batches` (one transaction per call) commits."""
    records, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        records += await batches()
    return records / (time.perf_counter() - started)


async def sqlite_append_rates(path: Path, seconds: float, batch: int) -> dict[str, float]:
    """The store's own append with the log (`insert_logged`) against rows of whole records
    without it, one transaction of `batch` records at a time, synchronous=FULL."""
    store = await SqliteStore.open(path)  # the schema and the log's head
    await store.close()
    connection = sqlite3.connect(path, isolation_level=None)
    configure(connection, "FULL")

    async def without() -> int:
        # No seq: SQLite numbers them after the last, as the store numbers logged records.
        rows = [_unlogged_values(_record(), text_of)[1:] for _ in range(batch)]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(_SQLITE_INSERT, rows)
        connection.execute("COMMIT")
        return batch

    async def with_log() -> int:
        records = [_record() for _ in range(batch)]
        connection.execute("BEGIN IMMEDIATE")
        sqlite_ledger.insert_logged(connection, records)
        connection.execute("COMMIT")
        return batch

    try:
        bare, logged = await _alternated(without, with_log, seconds)
    finally:
        connection.close()
    return _rates(bare, logged)


async def postgres_append_rates(
    database: PostgresDatabase, seconds: float, batch: int
) -> dict[str, float]:
    """As `sqlite_append_rates`, on one pooled connection to PostgreSQL."""
    store = await PostgresStore.open(database)
    await store.close()
    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=1)
    seq = 10**12  # clear of the numbers the store gives logged records

    async def without() -> int:
        nonlocal seq
        rows = []
        for record in (_record() for _ in range(batch)):
            seq += 1
            rows.append(_unlogged_values(replace(record, seq=seq), _as_is))
        async with pool.acquire() as connection, connection.transaction():
            await connection.executemany(_PG_INSERT, rows)
        return batch

    async def with_log() -> int:
        records = [_record() for _ in range(batch)]
        async with pool.acquire() as connection, connection.transaction():
            await postgres_ledger.insert_logged(connection, records)
        return batch

    try:
        bare, logged = await _alternated(without, with_log, seconds)
    finally:
        await pool.close()
    return _rates(bare, logged)


def _unlogged_values(record: LiabilityRecord, time_as: Any) -> tuple[Any, ...]:
    """The row a ledger without the log writes: every field of the record in its row."""
    return (
        record.seq,
        record.request_id,
        record.trace_id,
        record.bank_id,
        record.rpc,
        time_as(record.at),
        record.status_code,
        record.reason,
        record.clause.value,
        json.dumps(dict(record.evidence), sort_keys=True),
        record.outage_id,
        record.window_id,
        record.incident_id,
        record.holder_token,
        time_as(record.arrived_at),
        time_as(record.deadline_at),
        # As a ledger without the log wrote it: the standard library's JSON.
        json.dumps([attempt_to_dict(a) for a in record.attempts], default=datetime.isoformat),
        record.window_version,
        None,
    )


async def _alternated(
    without: Callable[[], Awaitable[int]], with_log: Callable[[], Awaitable[int]], seconds: float
) -> tuple[float, float]:
    """Each measured twice, in turn, half the time each: neither runs only on the larger,
    warmer store."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for logged in (False, True, True, False):
        rates[logged].append(await _timed(with_log if logged else without, seconds / 2))
    return statistics.mean(rates[False]), statistics.mean(rates[True])


def _as_is(moment: datetime | None) -> datetime | None:
    return moment  # asyncpg takes aware datetimes


def _rates(bare: float, logged: float) -> dict[str, float]:
    return {
        "without_log_per_s": round(bare, 1),
        "with_log_per_s": round(logged, 1),
        "ratio": round(logged / bare, 3) if bare else 0.0,
    }


def _fill_synthetic_log(partial: Path, size: int) -> None:
    """`size` entries with random leaf and node hashes, every complete node of level >= 1
    stored, and a frontier of the right shape, in a store file with its schema."""
    connection = sqlite3.connect(partial, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    chunk = 200_000
    for start in range(0, size, chunk):
        end = min(start + chunk, size)
        connection.executemany(
            "INSERT INTO evidence_log (idx, kind, ref, body, leaf_hash) "
            "VALUES (?, 'S', '', x'', ?)",
            ((i, os.urandom(HASH_SIZE)) for i in range(start, end)),
        )
    level = 1
    while size >> level:
        count = size >> level
        connection.executemany(
            "INSERT INTO evidence_nodes (level, idx, hash) VALUES (?, ?, ?)",
            ((level, i, os.urandom(HASH_SIZE)) for i in range(count)),
        )
        level += 1
    frontier = size.to_bytes(8, "big") + os.urandom(HASH_SIZE * size.bit_count())
    connection.execute(
        "UPDATE evidence_head SET tree_hash = 'sm3', frontier = ? WHERE id = 1", (frontier,)
    )
    connection.execute("COMMIT")
    connection.close()


async def proof_times(directory: Path, size: int, samples: int) -> dict[str, Any]:
    """Inclusion proofs of random leaves of a `size`-entry log, timed one after another."""
    path = directory / f"evidence-{size}.db"
    built = 0.0
    if not await asyncio.to_thread(path.exists):
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        await (await SqliteStore.open(partial)).close()  # the schema
        await asyncio.to_thread(_fill_synthetic_log, partial, size)
        await asyncio.to_thread(partial.rename, path)
        lock = partial.with_name(partial.name + ".migrate-lock")
        await asyncio.to_thread(lock.unlink, missing_ok=True)
        built = time.perf_counter() - started
    store = await SqliteStore.open(path)
    prover = Prover(store, TreeHash.SM3)
    rng = random.Random(12)  # noqa: S311 - which leaves to prove; nothing secret
    timings = []
    try:
        for _ in range(samples):
            index = rng.randrange(size)
            started = time.perf_counter()
            proof = await prover.inclusion(index, size)
            timings.append((time.perf_counter() - started) * 1000)
            assert len(proof) <= 2 * size.bit_length()
    finally:
        await store.close()
    timings.sort()
    return {
        "log_entries": size,
        "samples": samples,
        "p50_ms": round(statistics.median(timings), 3),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 3),
        "max_ms": round(timings[-1], 3),
        "built_in_s": round(built, 1),
    }


async def measure_evidence(
    directory: Path, cache: Path, seconds: float, log_size: int
) -> dict[str, Any]:
    """The figures of `make bench`: appends with and without the log on both stores, and
    inclusion proofs in a synthetic log of `log_size` entries (kept in `cache`)."""
    figures: dict[str, Any] = {
        "append_sqlite": await sqlite_append_rates(
            directory / "evidence-append.db", seconds, APPEND_BATCH
        )
    }
    async with fresh_database() as database:
        figures["append_postgresql"] = await postgres_append_rates(database, seconds, APPEND_BATCH)
    figures["inclusion_proof"] = await proof_times(cache, log_size, 300)
    return figures
