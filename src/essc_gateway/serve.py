"""`essc-gateway run`: the gateway in this process, or several worker processes on one port;
the simulated platform in this process unless ESSC_PLATFORM_ADDRESS names one."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import random
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from essc_gateway.app import Gateway
from essc_gateway.clock import SystemClock
from essc_gateway.config import (
    ConfigError,
    GatewayConfig,
    development_environment,
    load_config,
)
from essc_gateway.keys.hierarchy import KeyLoadError
from essc_gateway.keys.root import KeystoreError
from essc_gateway.runtime import settle_heap
from essc_gateway.service.periodic import run_every
from essc_gateway.simplatform import (
    Population,
    SimulatedPlatform,
    biometric_sample,
    generate_population,
    load_scenario,
)
from essc_gateway.simplatform.persistence import RegisterFile, RegisterFileError
from essc_gateway.telemetry.metrics_export import MetricsExport
from essc_gateway.tracing import build_tracer_provider, tracing_config_from_env

_WORKER_START_TIMEOUT = 60.0
REGISTER_FILE = "simulated-platform.register"
REGISTER_SAVE_INTERVAL = 5.0
_SUPERVISE_EVERY = 0.5
# More replacements than this within the window: something is wrong with every worker.
_MAX_RESTARTS = 5
_RESTART_WINDOW = 60.0
log = logging.getLogger("essc_gateway.supervisor")


async def wait_for_stop_signal() -> None:
    """Until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_gateway(options: argparse.Namespace) -> int:
    """Serves until SIGINT or SIGTERM; returns the exit status."""
    environment = dict(os.environ)
    tokens: dict[str, str] = {}
    if options.dev:
        dev_env, tokens = development_environment(Path(options.var_dir))
        environment = {**dev_env, **environment}
    environment.setdefault("ESSC_PORT", str(options.port))
    environment.setdefault("ESSC_DATABASE", str(Path(options.var_dir) / "essc-gateway.db"))
    environment.setdefault("ESSC_TRACES_FILE", str(Path(options.var_dir) / "traces.jsonl"))
    if options.dev:
        environment.setdefault("ESSC_METRICS_PORT", "0")  # printed once it listens
    try:
        config = load_config(environment)
        if options.workers < 1 or (options.workers > 1 and config.port == 0):
            raise ConfigError("--workers must be at least 1, and several need a fixed port")
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    async with contextlib.AsyncExitStack() as stack:
        platform: SimulatedPlatform | None = None
        population: Population | None = None
        if config.platform_address is not None:  # maybe the real one: no simulated people
            address = config.platform_address
        else:
            try:
                platform, population, address = await stack.enter_async_context(
                    _simulated_platform(config, options)
                )
            except RegisterFileError as error:
                print(f"configuration error: {error}", file=sys.stderr)
                return 2
        if options.workers == 1:
            try:
                await _serve_here(config, address, environment, platform, tokens, population)
            except (KeystoreError, KeyLoadError) as error:  # the root or a bank key unusable
                print(f"key management error: {error}", file=sys.stderr)
                return 2
            return 0
        environment["ESSC_PLATFORM_ADDRESS"] = address
        return await _serve_workers(options.workers, environment, platform, tokens, population)


@contextlib.asynccontextmanager
async def _simulated_platform(
    config: GatewayConfig, options: argparse.Namespace
) -> AsyncIterator[tuple[SimulatedPlatform, Population, str]]:
    """The simulated platform in this process; in a development run, with the register of
    the previous run (the gateway's store outlives a run: so does the platform's register).

    Raises:
        RegisterFileError: the saved register cannot be used.
    """
    population = generate_population(config.population_seed, config.population_size)
    platform = SimulatedPlatform(population)
    register: RegisterFile | None = None
    saver: asyncio.Task[None] | None = None
    if options.dev:
        register = RegisterFile(
            Path(options.var_dir) / REGISTER_FILE,
            platform.state,
            f"{config.population_seed}:{config.population_size}",
        )
        cards = register.load()
        print(f"simulated platform register kept in {register.path} ({cards} cards)")
        saver = asyncio.create_task(
            run_every(REGISTER_SAVE_INTERVAL, register.save_in_background, "register save")
        )
    try:
        port = await platform.start("127.0.0.1", 0)
        if options.scenario:
            await platform.apply_scenario(load_scenario(options.scenario))
        yield platform, population, f"127.0.0.1:{port}"
    finally:
        if saver is not None:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
        await platform.stop()
        if register is not None:
            register.save()


async def _serve_here(
    config: GatewayConfig,
    address: str,
    environment: dict[str, str],
    platform: SimulatedPlatform | None,
    tokens: dict[str, str],
    population: Population | None,
) -> None:
    tracer_provider = build_tracer_provider(tracing_config_from_env(environment))
    metrics = MetricsExport(config.metrics)
    gateway = Gateway(
        config, address, tracer_provider=tracer_provider, meter_provider=metrics.provider
    )
    try:
        port = await gateway.start()
        settle_heap()
        _print_banner(f"{config.host}:{port}", address, platform, tokens, population)
        if metrics.address is not None:
            print(f"  metrics (Prometheus): http://{metrics.address}/metrics", flush=True)
        await wait_for_stop_signal()
    finally:
        await gateway.stop()
        tracer_provider.shutdown()  # the last batch of spans
        metrics.shutdown()


class WorkerFailed(Exception):
    """A worker process ended while it should be serving."""


async def _serve_workers(
    workers: int,
    environment: dict[str, str],
    platform: SimulatedPlatform | None,
    tokens: dict[str, str],
    population: Population | None,
) -> int:
    """`workers` processes, each a Gateway on the same port (SO_REUSEPORT) and store; the
    kernel spreads connections over them. This process keeps the simulated platform and
    supervises: a worker that dies is reported and replaced (worker 0 runs the background
    jobs, so its replacement runs them again); one that dies while starting, or workers
    that keep dying, stop the whole server with a message and exit code 1."""
    stop = asyncio.Event()
    supervisor = _Supervisor(workers, environment, stop)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await supervisor.start_all()
        host, port = environment.get("ESSC_HOST", "127.0.0.1"), environment["ESSC_PORT"]
        _print_banner(
            f"{host}:{port} ({workers} workers)",
            environment["ESSC_PLATFORM_ADDRESS"],
            platform,
            tokens,
            population,
        )
        while not stop.is_set():
            await supervisor.replace_dead()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _SUPERVISE_EVERY)
    except WorkerFailed as failure:
        print(f"essc-gateway: {failure}; stopping", file=sys.stderr, flush=True)
        return 1
    finally:
        await supervisor.stop_all()
    return 0


class _Supervisor:
    def __init__(self, workers: int, environment: dict[str, str], stop: asyncio.Event) -> None:
        self._stop = stop
        self._context = multiprocessing.get_context("spawn")
        self._ready: multiprocessing.queues.Queue[int] = self._context.Queue()
        self._environment = environment
        self._workers = workers
        self._processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self._restarts: deque[float] = deque()

    def _spawn(self, index: int) -> None:
        process = self._context.Process(
            target=_gateway_worker,
            args=(self._environment, index, self._ready),
            name=f"essc-worker-{index}",
        )
        process.start()
        self._processes[index] = process

    async def start_all(self) -> None:
        for index in range(self._workers):
            self._spawn(index)
        await self._wait_ready(set(range(self._workers)))

    async def _wait_ready(self, pending: set[int]) -> None:
        """Until every worker in `pending` listens; WorkerFailed if one ends first."""
        give_up = time.monotonic() + _WORKER_START_TIMEOUT
        while pending and not self._stop.is_set():  # a stop signal ends the wait
            with contextlib.suppress(queue.Empty):
                pending.discard(await asyncio.to_thread(self._ready.get, True, 0.2))
            for index in list(pending):
                process = self._processes[index]
                if not process.is_alive():
                    raise WorkerFailed(
                        f"worker {index} exited with code {process.exitcode} while starting "
                        "(its log lines above say why)"
                    )
            if time.monotonic() > give_up:
                raise WorkerFailed(f"workers {sorted(pending)} did not start within 60 s")

    async def replace_dead(self) -> None:
        for index, process in list(self._processes.items()):
            if process.is_alive():
                continue
            now = time.monotonic()
            self._restarts.append(now)
            while self._restarts and now - self._restarts[0] > _RESTART_WINDOW:
                self._restarts.popleft()
            if len(self._restarts) > _MAX_RESTARTS:
                raise WorkerFailed(
                    f"workers exited {len(self._restarts)} times within {_RESTART_WINDOW:.0f} s"
                )
            log.error(
                "worker %d (pid %s) exited with code %s; starting a replacement",
                index,
                process.pid,
                process.exitcode,
            )
            self._spawn(index)
            await self._wait_ready({index})
            log.warning("worker %d replaced", index)

    async def stop_all(self) -> None:
        for process in self._processes.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker drains and stops
        for process in self._processes.values():
            await asyncio.to_thread(process.join)


def _gateway_worker(
    environment: dict[str, str], index: int, ready: multiprocessing.queues.Queue[int]
) -> None:
    metrics_port = environment.get("ESSC_METRICS_PORT", "0") or "0"
    if metrics_port != "0":  # one port per worker: metrics are each process's own
        environment = {**environment, "ESSC_METRICS_PORT": str(int(metrics_port) + index)}
    if environment.get("ESSC_TRACES_FILE"):
        # One file per worker: two processes appending to one file could interleave lines.
        environment = {
            **environment,
            "ESSC_TRACES_FILE": f"{environment['ESSC_TRACES_FILE']}.{index}",
        }
    asyncio.run(_worker_main(environment, index, ready))


def _announce_ready(ready: multiprocessing.queues.Queue[int], index: int) -> None:
    """Tells the parent, and flushes and closes this end now: left to the exit handlers,
    the queue's feeder thread was seen to hang a stopping worker (joined, never closed)."""
    ready.put(index)
    ready.close()
    ready.join_thread()


async def _worker_main(
    environment: dict[str, str], index: int, ready: multiprocessing.queues.Queue[int]
) -> None:
    config = load_config(environment)
    assert config.platform_address is not None, "the parent sets the platform address"
    tracer_provider = build_tracer_provider(tracing_config_from_env(environment))
    metrics = MetricsExport(config.metrics)  # each worker its own (port 0: any free one)
    gateway = Gateway(
        config,
        config.platform_address,
        tracer_provider=tracer_provider,
        meter_provider=metrics.provider,
        reuse_port=True,
    )
    try:
        await gateway.start()
        settle_heap()
        await asyncio.to_thread(_announce_ready, ready, index)
        await wait_for_stop_signal()
    finally:
        await gateway.stop()
        tracer_provider.shutdown()
        metrics.shutdown()


def _print_banner(
    listening: str,
    address: str,
    platform: SimulatedPlatform | None,
    tokens: dict[str, str],
    population: Population | None,
) -> None:
    print(f"essc-gateway listening on {listening} (platform at {address})")
    if platform is not None:
        print(f"  simulated platform control (faults, SMS inbox): {platform.control_address}")
    for identity, token in tokens.items():
        label = identity if identity.startswith("operator") else f"bank {identity}"
        print(f"  development {label}: authorization: Bearer {token}")
    if population is not None:
        _print_samples(population)
    sys.stdout.flush()


def _print_samples(population: Population) -> None:
    rng = random.Random(1)  # noqa: S311 - a demo capture, nothing cryptographic
    print("sample identities from the simulated population (initial password = last 8 of ID):")
    for person in population.samples(SystemClock().now().date(), 3):
        sample = base64.b64encode(biometric_sample(person, rng)).decode()
        print(
            f"  name={person.name} id={person.id_number} phone={person.mobile_phone} "
            f"card={person.card_number}\n    biometric_sample={sample}"
        )
