"""A local cluster for newcomers and for the end-to-end test: N gateway replicas as separate
processes, each in a working directory of its own, sharing one PostgreSQL database, behind
nginx (TLS and the banks' client certificates end there; see deploy/nginx), with the
simulated platform. `essc-gateway cluster` runs one until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from essc_gateway.access.roles import OperatorRole
from essc_gateway.config import development_environment
from essc_gateway.crypto import token_digest
from essc_gateway.dev_pki import Pem, make_pki
from essc_gateway.service.periodic import run_every
from essc_gateway.simplatform import SimulatedPlatform, generate_population
from essc_gateway.simplatform.persistence import RegisterFile, RegisterFileError
from essc_gateway.store.location import PostgresDatabase

NGINX_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "essc-gateway.conf"
BANKS = ("demo-bank", "other-bank")
OPERATOR = "dev-operator"
_READY_WITHIN = 60.0
REGISTER_FILE = "simulated-platform.register"
REGISTER_SAVE_INTERVAL = 5.0


class ClusterError(Exception):
    """The cluster could not start: the message says which part and why."""


@dataclass(frozen=True)
class ClusterSettings:
    directory: Path
    database: PostgresDatabase
    replicas: int = 2
    listen_port: int = 8443
    first_replica_port: int = 50071
    population_seed: int = 20240320
    population_size: int = 2000
    nginx_template: Path = NGINX_TEMPLATE


@dataclass
class LocalCluster:
    settings: ClusterSettings
    platform: SimulatedPlatform | None = None
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    nginx: asyncio.subprocess.Process | None = None
    ca: Path | None = None
    clients: dict[str, Pem] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    register: RegisterFile | None = None
    _register_saver: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.listen_port}"

    def replica_port(self, index: int) -> int:
        return self.settings.first_replica_port + index

    async def start(self) -> None:
        # Replicas run in directories of their own: every path they are given is absolute.
        self.settings = settings = replace(
            self.settings, directory=self.settings.directory.resolve()
        )
        directory = settings.directory
        directory.mkdir(parents=True, exist_ok=True)
        if shutil.which("nginx") is None:
            raise ClusterError("nginx is not installed (Debian: apt-get install nginx)")
        await ensure_database(settings.database)
        keys_env, tokens = development_environment(directory)
        self.tokens = tokens
        (directory / "pki").mkdir(exist_ok=True)
        self.ca, server, self.clients = make_pki(
            directory / "pki", (*BANKS, OPERATOR), valid_for=timedelta(days=30)
        )
        config_file = directory / "cluster-config.json"
        config_file.write_text(json.dumps(_replica_config(tokens), indent=2))
        population = generate_population(settings.population_seed, settings.population_size)
        self.platform = SimulatedPlatform(population)
        # The platform's cards outlive a run as the database does (as `make run` keeps them).
        self.register = RegisterFile(
            directory / REGISTER_FILE,
            self.platform.state,
            f"{settings.population_seed}:{settings.population_size}",
        )
        try:
            self.register.load()
        except RegisterFileError as error:
            raise ClusterError(str(error)) from None
        self._register_saver = asyncio.create_task(
            run_every(REGISTER_SAVE_INTERVAL, self.register.save_in_background, "register save")
        )
        platform_port = await self.platform.start("127.0.0.1", 0)
        environment = {
            **os.environ,
            **keys_env,
            "ESSC_CONFIG": str(config_file),
            "ESSC_DATABASE": settings.database.dsn,
            "ESSC_PLATFORM_ADDRESS": f"127.0.0.1:{platform_port}",
            "ESSC_HOST": "127.0.0.1",
        }
        for index in range(settings.replicas):
            self.processes.append(await self._start_replica(index, environment))
        for index in range(settings.replicas):
            await wait_until_serving(f"127.0.0.1:{self.replica_port(index)}", _READY_WITHIN)
        self.nginx = await self._start_nginx(server)

    async def _start_replica(
        self, index: int, environment: dict[str, str]
    ) -> asyncio.subprocess.Process:
        """A replica in a working directory of its own: nothing shared but the database."""
        workdir = self.settings.directory / f"replica-{index}"
        workdir.mkdir(exist_ok=True)
        with (workdir / "replica.log").open("ab") as log:  # the child keeps its own copy
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "essc_gateway.cli",
                "--log-level",
                "WARNING",
                "run",
                "--port",
                str(self.replica_port(index)),
                "--var-dir",
                str(workdir),
                cwd=workdir,
                env={**environment, "ESSC_STATE_DIR": str(workdir)},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    async def _start_nginx(self, server: Pem) -> asyncio.subprocess.Process:
        assert self.ca is not None
        prefix = self.settings.directory / "nginx"
        for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / temp).mkdir(parents=True, exist_ok=True)
        upstreams = "\n".join(
            f"        server 127.0.0.1:{self.replica_port(i)} max_fails=1 fail_timeout=2s;"
            for i in range(self.settings.replicas)
        )
        rendered = render_nginx_config(
            self.settings.nginx_template,
            prefix=prefix,
            listen=f"127.0.0.1:{self.settings.listen_port}",
            upstream_servers=upstreams,
            server=server,
            client_ca=self.ca,
        )
        conf = prefix / "nginx.conf"
        conf.write_text(rendered)
        check = await asyncio.create_subprocess_exec(
            "nginx", "-t", "-q", "-p", str(prefix), "-c", str(conf), stderr=asyncio.subprocess.PIPE
        )
        _, problems = await check.communicate()
        if check.returncode != 0:
            raise ClusterError(f"nginx refused its configuration: {problems.decode().strip()}")
        process = await asyncio.create_subprocess_exec(
            "nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;",
            start_new_session=True,
        )  # fmt: skip
        await _wait_for_port("127.0.0.1", self.settings.listen_port, _READY_WITHIN)
        return process

    def kill_replica(self, index: int) -> None:
        """SIGKILL, no clean shutdown: as a host that dies."""
        self.processes[index].send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.nginx is not None and self.nginx.returncode is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful: finishes calls in flight
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.nginx.wait(), 10)
            if self.nginx.returncode is None:
                self.nginx.kill()
                await self.nginx.wait()
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._register_saver is not None:
            self._register_saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._register_saver
        if self.platform is not None:
            await self.platform.stop()
        if self.register is not None:
            self.register.save()


def render_nginx_config(
    template: Path,
    *,
    prefix: Path,
    listen: str,
    upstream_servers: str,
    server: Pem,
    client_ca: Path,
) -> str:
    """The shipped template with its ${NAME} values, as envsubst would fill them (nginx's own
    $variables stay); a value the template names and nobody gives is an error."""
    values = {
        "PREFIX": str(prefix),
        "LISTEN": listen,
        "UPSTREAM_SERVERS": upstream_servers,
        "SERVER_CERT": str(server.cert),
        "SERVER_KEY": str(server.key),
        "CLIENT_CA": str(client_ca),
    }

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ClusterError(f"the nginx template needs ${{{match.group(1)}}}")
        return values[match.group(1)]

    return re.sub(r"\$\{([A-Z_]+)\}", value, template.read_text())


def _replica_config(tokens: dict[str, str]) -> dict[str, object]:
    """Banks and the operator identified by their certificate's common name through nginx
    (and by development token when calling a replica directly)."""
    return {
        "banks": [
            {
                "bank_id": bank,
                "token_sha256": token_digest(tokens[bank]),
                "certificate_subject": bank,
                "store_and_forward": bank == "demo-bank",
            }
            for bank in BANKS
        ],
        "operators": [
            {
                "operator_id": OPERATOR,
                "token_sha256": token_digest(tokens[f"operator {OPERATOR}"]),
                "certificate_subject": OPERATOR,
                # A local cluster: one operator holds every role.
                "roles": [role.value for role in OperatorRole],
            }
        ],
        "trusted_proxy": {"addresses": ["127.0.0.1/32"]},
    }


async def ensure_database(database: PostgresDatabase) -> None:
    """Creates the cluster's database on its server if it does not exist yet."""
    parts = urlsplit(database.dsn)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", query=""))
    try:
        connection = await asyncpg.connect(admin, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        raise ClusterError(f"PostgreSQL at {database} unreachable: {error}") from None
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists is None:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def wait_until_serving(address: str, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if loop.time() > deadline:
                raise ClusterError(f"replica at {address} not serving after {within:.0f} s")
            await asyncio.sleep(0.2)


async def _wait_for_port(host: str, port: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise ClusterError(f"nothing listens on {host}:{port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
