"""`essc-gateway run`: the gateway in this process, or several worker processes on one port;
the simulated platform in this process unless ESSC_PLATFORM_ADDRESS names one."""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import multiprocessing.queues
import os
import random
import signal
import sys
from pathlib import Path

from essc_gateway.app import Gateway
from essc_gateway.clock import SystemClock
from essc_gateway.config import (
    ConfigError,
    GatewayConfig,
    development_environment,
    load_config,
)
from essc_gateway.runtime import settle_heap
from essc_gateway.simplatform import (
    Population,
    SimulatedPlatform,
    biometric_sample,
    generate_population,
    load_scenario,
)
from essc_gateway.tracing import build_tracer_provider, tracing_config_from_env

_WORKER_START_TIMEOUT = 60.0


async def _wait_for_stop_signal() -> None:
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
    try:
        config = load_config(environment)
        if options.workers < 1 or (options.workers > 1 and config.port == 0):
            raise ConfigError("--workers must be at least 1, and several need a fixed port")
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    platform: SimulatedPlatform | None = None
    population: Population | None = None
    address = config.platform_address
    if address is None:  # an external platform may be the real one: no simulated people then
        population = generate_population(config.population_seed, config.population_size)
        platform = SimulatedPlatform(population)
        platform_port = await platform.start("127.0.0.1", 0)
        address = f"127.0.0.1:{platform_port}"
        if options.scenario:
            await platform.apply_scenario(load_scenario(options.scenario))
    try:
        if options.workers == 1:
            await _serve_here(config, address, environment, platform, tokens, population)
        else:
            environment["ESSC_PLATFORM_ADDRESS"] = address
            await _serve_workers(options.workers, environment, platform, tokens, population)
    finally:
        if platform is not None:
            await platform.stop()
    return 0


async def _serve_here(
    config: GatewayConfig,
    address: str,
    environment: dict[str, str],
    platform: SimulatedPlatform | None,
    tokens: dict[str, str],
    population: Population | None,
) -> None:
    tracer_provider = build_tracer_provider(tracing_config_from_env(environment))
    gateway = Gateway(config, address, tracer_provider=tracer_provider)
    try:
        port = await gateway.start()
        settle_heap()
        _print_banner(f"{config.host}:{port}", address, platform, tokens, population)
        await _wait_for_stop_signal()
    finally:
        await gateway.stop()
        tracer_provider.shutdown()  # the last batch of spans


async def _serve_workers(
    workers: int,
    environment: dict[str, str],
    platform: SimulatedPlatform | None,
    tokens: dict[str, str],
    population: Population | None,
) -> None:
    """`workers` processes, each a Gateway on the same port (SO_REUSEPORT) and store; the
    kernel spreads connections over them. This process keeps the simulated platform."""
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.queues.Queue[int] = context.Queue()
    processes = [
        context.Process(
            target=_gateway_worker, args=(environment, index, ready), name=f"essc-worker-{index}"
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            await asyncio.to_thread(ready.get, True, _WORKER_START_TIMEOUT)
        host, port = environment.get("ESSC_HOST", "127.0.0.1"), environment["ESSC_PORT"]
        _print_banner(
            f"{host}:{port} ({workers} workers)",
            environment["ESSC_PLATFORM_ADDRESS"],
            platform,
            tokens,
            population,
        )
        await _wait_for_stop_signal()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker drains and stops
        for process in processes:
            await asyncio.to_thread(process.join)


def _gateway_worker(
    environment: dict[str, str], index: int, ready: multiprocessing.queues.Queue[int]
) -> None:
    if environment.get("ESSC_TRACES_FILE"):
        # One file per worker: two processes appending to one file could interleave lines.
        environment = {
            **environment,
            "ESSC_TRACES_FILE": f"{environment['ESSC_TRACES_FILE']}.{index}",
        }
    asyncio.run(_worker_main(environment, index, ready))


async def _worker_main(
    environment: dict[str, str], index: int, ready: multiprocessing.queues.Queue[int]
) -> None:
    config = load_config(environment)
    assert config.platform_address is not None, "the parent sets the platform address"
    tracer_provider = build_tracer_provider(tracing_config_from_env(environment))
    gateway = Gateway(
        config,
        config.platform_address,
        tracer_provider=tracer_provider,
        reuse_port=True,
        background_jobs=index == 0,
    )
    try:
        port = await gateway.start()
        settle_heap()
        ready.put(port)
        await _wait_for_stop_signal()
    finally:
        await gateway.stop()
        tracer_provider.shutdown()


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
