"""`essc-gateway`: run the gateway (with the simulated platform), or the platform alone."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from essc_gateway.app import Gateway
from essc_gateway.cli_ledger import add_ledger_commands, run_ledger
from essc_gateway.clock import SystemClock
from essc_gateway.config import ConfigError, development_environment, load_config
from essc_gateway.loadtest import (
    LoadAborted,
    SetupError,
    add_load_arguments,
    options_from_args,
    run_load,
)
from essc_gateway.simplatform import (
    Population,
    SimulatedPlatform,
    biometric_sample,
    generate_population,
    load_scenario,
    run_platform,
)
from essc_gateway.tracing import build_tracer_provider, tracing_config_from_env


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _run(options: argparse.Namespace) -> int:
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
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    platform: SimulatedPlatform | None = None
    address = config.platform_address
    population = generate_population(config.population_seed, config.population_size)
    if address is None:
        platform = SimulatedPlatform(population)
        platform_port = await platform.start("127.0.0.1", 0)
        address = f"127.0.0.1:{platform_port}"
        if options.scenario:
            await platform.apply_scenario(load_scenario(options.scenario))
    tracer_provider = build_tracer_provider(tracing_config_from_env(environment))
    gateway = Gateway(config, address, tracer_provider=tracer_provider)
    try:
        port = await gateway.start()
        print(f"essc-gateway listening on {config.host}:{port} (platform at {address})")
        if platform is not None:
            print(f"  simulated platform control (faults, SMS inbox): {platform.control_address}")
        for identity, token in tokens.items():
            label = identity if identity.startswith("operator") else f"bank {identity}"
            print(f"  development {label}: authorization: Bearer {token}")
        _print_samples(population)
        sys.stdout.flush()
        await _wait_for_stop_signal()
    finally:
        await gateway.stop()
        if platform is not None:
            await platform.stop()
        tracer_provider.shutdown()  # the last batch of spans
    return 0


def _print_samples(population: Population) -> None:
    rng = random.Random(1)  # noqa: S311 - a demo capture, nothing cryptographic
    print("sample identities from the simulated population (initial password = last 8 of ID):")
    for person in population.samples(SystemClock().now().date(), 3):
        sample = base64.b64encode(biometric_sample(person, rng)).decode()
        print(
            f"  name={person.name} id={person.id_number} phone={person.mobile_phone} "
            f"card={person.card_number}\n    biometric_sample={sample}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="essc-gateway", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the gateway (simulated platform in-process)")
    run.add_argument("--port", type=int, default=50051)
    run.add_argument("--var-dir", default="var", help="database and development secrets")
    run.add_argument(
        "--scenario", type=Path, help="fault timeline for the simulated platform (JSON)"
    )
    run.add_argument(
        "--dev",
        action="store_true",
        help="create development keys and bank tokens in --var-dir (never in production)",
    )

    platform = commands.add_parser("platform", help="run the simulated platform alone")
    platform.add_argument("--host", default="127.0.0.1")
    platform.add_argument("--port", type=int, default=50061)
    platform.add_argument("--seed", type=int, default=20240320)
    platform.add_argument("--size", type=int, default=2000)
    platform.add_argument(
        "--scenario", type=Path, help="fault timeline (JSON of essc.platform.v1.FaultScenario)"
    )
    platform.add_argument("--control-port", type=int, default=0)

    add_ledger_commands(commands)
    load = commands.add_parser("load", help="drive a gateway with a load (the load-test harness)")
    add_load_arguments(load)

    options = parser.parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        if options.command == "run":
            return asyncio.run(_run(options))
        if options.command == "ledger":
            return asyncio.run(run_ledger(options))
        if options.command == "load":
            try:
                load_options = options_from_args(options)
            except ValueError as error:
                print(f"load: {error}", file=sys.stderr)
                return 2
            try:
                asyncio.run(run_load(load_options))
            except (LoadAborted, SetupError) as error:
                print(f"load: {error}", file=sys.stderr)
                return 1
            return 0
        scenario = load_scenario(options.scenario) if options.scenario else None
        asyncio.run(
            run_platform(
                options.host,
                options.port,
                options.seed,
                options.size,
                scenario,
                control_port=options.control_port,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
