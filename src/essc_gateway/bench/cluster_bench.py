"""The benchmark's cluster measurements (issue 11): Verify through nginx to 1 and to 2
replicas on PostgreSQL (the replicas' CPU per request), Issue through one gateway on
PostgreSQL against SQLite, and the store alone on PostgreSQL. Each PostgreSQL measurement
gets a database of its own, dropped afterwards."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from essc_gateway.bench.measured import ProcessUsage, usage_of
from essc_gateway.local_cluster import BANKS, ClusterSettings, LocalCluster, ensure_database
from essc_gateway.store.location import PostgresDatabase

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.asynccontextmanager
async def fresh_database(server: str = DEFAULT_SERVER) -> AsyncIterator[PostgresDatabase]:
    """A new database on `server` for one measurement; dropped at the end."""
    name = f"essc_bench_{secrets.token_hex(4)}"
    database = PostgresDatabase(urlunsplit(urlsplit(server)._replace(path=f"/{name}")))
    await ensure_database(database)
    try:
        yield database
    finally:
        connection = await asyncpg.connect(server)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@dataclass
class ReplicaCpu:
    """The CPU of a cluster's replica processes (not nginx, not the database: the same in
    both shapes compared), as `Bench.load` reads it from a server."""

    cluster: LocalCluster
    address: str

    def usage(self) -> ProcessUsage:
        replicas = []
        for process in self.cluster.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                replicas.append(psutil.Process(process.pid))
        return usage_of(replicas)


@contextlib.asynccontextmanager
async def running_cluster(
    directory: Path,
    database: PostgresDatabase,
    replicas: int,
    ports: tuple[int, int],
    seed: int,
    population_size: int,
) -> AsyncIterator[LocalCluster]:
    cluster = LocalCluster(
        ClusterSettings(
            directory=directory,
            database=database,
            replicas=replicas,
            listen_port=ports[0],
            first_replica_port=ports[1],
            population_seed=seed,
            population_size=population_size,
        )
    )
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


def tls_of(cluster: LocalCluster) -> dict[str, Any]:
    """LoadOptions fields for calling the cluster through nginx as its first bank."""
    client = cluster.clients[BANKS[0]]
    return {"ca_file": cluster.ca, "cert_file": client.cert, "key_file": client.key}
