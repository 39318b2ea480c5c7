"""`essc-gateway cluster`: a local cluster (replicas on PostgreSQL behind nginx) until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from essc_gateway.local_cluster import BANKS, OPERATOR, ClusterError, ClusterSettings, LocalCluster
from essc_gateway.serve import wait_for_stop_signal
from essc_gateway.store.location import PostgresDatabase


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, default=2, help="gateway processes (2+)")
    parser.add_argument("--port", type=int, default=8443, help="where nginx listens (TLS)")
    parser.add_argument(
        "--first-replica-port", type=int, default=50071, help="replica i listens on this + i"
    )
    parser.add_argument(
        "--database",
        default="postgresql://postgres@127.0.0.1:5432/essc_cluster",
        help="the PostgreSQL store the replicas share (made if missing)",
    )
    parser.add_argument(
        "--var-dir", type=Path, default=Path("var/cluster"), help="replicas' and nginx's files"
    )


async def run_cluster_command(options: argparse.Namespace) -> int:
    if options.replicas < 1:
        print("cluster: --replicas must be at least 1", file=sys.stderr)
        return 2
    try:
        database = PostgresDatabase(options.database)
    except ValueError as error:
        print(f"cluster: --database: {error}", file=sys.stderr)
        return 2
    cluster = LocalCluster(
        ClusterSettings(
            directory=options.var_dir,
            database=database,
            replicas=options.replicas,
            listen_port=options.port,
            first_replica_port=options.first_replica_port,
        )
    )
    try:
        await cluster.start()
        _print_banner(cluster)
        await wait_for_stop_signal()
    except ClusterError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 1
    finally:
        await cluster.stop()
    return 0


def _print_banner(cluster: LocalCluster) -> None:
    settings = cluster.settings
    assert cluster.ca is not None
    assert cluster.platform is not None
    print(f"essc-gateway cluster: nginx (TLS, client certificates) on {cluster.address}")
    for index in range(settings.replicas):
        print(
            f"  replica {index}: 127.0.0.1:{cluster.replica_port(index)} "
            f"(plaintext; logs in {settings.directory / f'replica-{index}'})"
        )
    print(f"  store: {settings.database}")
    print(f"  simulated platform control: {cluster.platform.control_address}")
    print(f"  CA: {cluster.ca}")
    for name in (*BANKS, OPERATOR):
        pem = cluster.clients[name]
        print(f"  client certificate of {name}: {pem.cert} (key {pem.key})")
    print(f"  directly to a replica: authorization: Bearer {cluster.tokens[BANKS[0]]}")
    print("  e.g.: grpcurl -cacert CA -cert CERT -key KEY -servername localhost "
          f"{cluster.address} list")  # fmt: skip
    today = datetime.now(UTC).date()
    for person in cluster.platform.population.samples(today, 3):
        print(f"  sample: name={person.name} id={person.id_number} card={person.card_number}")
    sys.stdout.flush()
