"""`essc-gateway`: run the gateway (with the simulated platform), or the platform alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from essc_gateway import __version__
from essc_gateway.cli_bench import (
    add_bench_arguments,
    add_soak_arguments,
    run_bench_command,
    run_soak_command,
)
from essc_gateway.cli_cluster import add_cluster_arguments, run_cluster_command
from essc_gateway.cli_evidence import add_evidence_commands, run_evidence
from essc_gateway.cli_fuzz import add_fuzz_arguments, run_fuzz_command
from essc_gateway.cli_health import add_health_arguments, run_health_command
from essc_gateway.cli_keys import add_keys_commands, run_keys
from essc_gateway.cli_ledger import add_ledger_commands, run_ledger
from essc_gateway.loadtest import (
    LoadAborted,
    SetupError,
    add_load_arguments,
    options_from_args,
    run_load,
)
from essc_gateway.serve import run_gateway
from essc_gateway.simplatform import (
    load_scenario,
    run_platform,
)
from essc_gateway.telemetry.json_logs import configure_logging


def _run_load_command(options: argparse.Namespace) -> int:
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


class _DefaultsShown(argparse.HelpFormatter):
    """Each option's default after its help, unless it has none or the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, [], False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every command's help shows each option's default."""
    parser.formatter_class = _DefaultsShown
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="essc-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"essc-gateway {__version__}")
    parser.add_argument(
        "--log-level",
        help="the lowest level of log line written",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("ESSC_LOG_FORMAT", "text"),
        help="log lines as text or as JSON with trace and span ids (default: ESSC_LOG_FORMAT, "
        "else text)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the gateway (simulated platform in-process)")
    run.add_argument(
        "--port", type=int, default=50051, help="the bank-facing port (ESSC_PORT wins)"
    )
    run.add_argument("--var-dir", default="var", help="database and development secrets")
    run.add_argument(
        "--scenario", type=Path, help="fault timeline for the simulated platform (JSON)"
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the port (SO_REUSEPORT) and the store",
    )
    run.add_argument(
        "--dev",
        action="store_true",
        help="create development keys and bank tokens in --var-dir (never in production)",
    )

    platform = commands.add_parser("platform", help="run the simulated platform alone")
    platform.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    platform.add_argument("--port", type=int, default=50061, help="the platform's gRPC port")
    platform.add_argument(
        "--seed", type=int, default=20240320, help="the simulated population's seed"
    )
    platform.add_argument("--size", type=int, default=2000, help="people in the population")
    platform.add_argument(
        "--scenario", type=Path, help="fault timeline (JSON of essc.platform.v1.FaultScenario)"
    )
    platform.add_argument(
        "--control-port", type=int, default=0, help="the control service's port (0: any free)"
    )

    cluster = commands.add_parser(
        "cluster", help="a local cluster: replicas on PostgreSQL behind nginx, simulated platform"
    )
    add_cluster_arguments(cluster)

    add_ledger_commands(commands)
    add_evidence_commands(commands)
    add_keys_commands(commands)
    health = commands.add_parser(
        "health", help="check a running gateway's gRPC health (exit 0 when SERVING)"
    )
    add_health_arguments(health)
    load = commands.add_parser("load", help="drive a gateway with a load (the load-test harness)")
    add_load_arguments(load)

    bench = commands.add_parser(
        "bench", help="benchmark: echo baseline vs the gateway per RPC, targets, JSON report"
    )
    add_bench_arguments(bench)
    soak = commands.add_parser(
        "soak", help="a long mixed load on one gateway: memory, files and tasks must not grow"
    )
    add_soak_arguments(soak)

    fuzz = commands.add_parser(
        "fuzz", help="fuzz every GatewayService method with random and mutated bodies"
    )
    add_fuzz_arguments(fuzz)

    _show_defaults(parser)
    options = parser.parse_args(argv)
    configure_logging(options.log_level.upper(), json_lines=options.log_format == "json")
    commands_run: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": lambda o: asyncio.run(run_gateway(o)),
        "cluster": lambda o: asyncio.run(run_cluster_command(o)),
        "ledger": lambda o: asyncio.run(run_ledger(o)),
        "evidence": lambda o: asyncio.run(run_evidence(o)),
        "keys": lambda o: asyncio.run(run_keys(o)),
        "health": lambda o: asyncio.run(run_health_command(o)),
        "bench": lambda o: asyncio.run(run_bench_command(o)),
        "soak": lambda o: asyncio.run(run_soak_command(o)),
        "fuzz": lambda o: asyncio.run(run_fuzz_command(o)),
        "load": _run_load_command,
        "platform": _run_platform_command,
    }
    with contextlib.suppress(KeyboardInterrupt):
        return commands_run[options.command](options)
    return 0


def _run_platform_command(options: argparse.Namespace) -> int:
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
