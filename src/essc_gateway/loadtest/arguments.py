"""Command-line arguments of `essc-gateway load`, and the options they make."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from essc_gateway.loadtest.config import DEFAULT_MIX, SERVICES, LoadOptions, parse_mix

TOKEN_ENV = "ESSC_LOAD_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the load harness's arguments to `parser` (a `load` sub-command's parser)."""
    default_mix = ",".join(f"{k}={v:g}" for k, v in DEFAULT_MIX.items())
    parser.add_argument("--target", default="127.0.0.1:50051", help="gateway host:port")
    parser.add_argument(
        "--token", help=f"the bank's bearer token (default: ${TOKEN_ENV})", default=None
    )
    parser.add_argument(
        "--service",
        choices=SERVICES,
        default="gateway",
        help="what --target is: the gateway, the simulated platform (called directly with "
        "what the gateway sends it) or the bare echo service",
    )
    parser.add_argument("--ca-file", type=Path, help="TLS: CAs trusted for the gateway")
    parser.add_argument("--cert-file", type=Path, help="mTLS: client certificate chain")
    parser.add_argument("--key-file", type=Path, help="mTLS: client key")
    parser.add_argument(
        "--mix",
        default=default_mix,
        help=f"rpc=weight,... of verify, issue, authenticate, query (default {default_mix})",
    )
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--rate", type=float, help="open loop: requests per second on a fixed timetable"
    )
    loop.add_argument("--concurrency", type=int, help="closed loop: requests in flight (default 8)")
    parser.add_argument(
        "--duration", type=float, help="seconds of load (default 10 unless --count)"
    )
    parser.add_argument("--count", type=int, help="number of requests")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (0: in this process)"
    )
    parser.add_argument("--holders", type=int, default=20, help="holders prepared in set-up")
    parser.add_argument(
        "--applicants",
        type=int,
        default=200,
        help="people verified in set-up for issue (more are verified as the load needs them)",
    )
    parser.add_argument("--seed", type=int, default=20240320, help="population seed")
    parser.add_argument(
        "--population-size",
        type=int,
        default=2000,
        help="the platform's population (issue ends early once its fresh people are used up)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline per call (s)")
    parser.add_argument(
        "--client-retries", action="store_true", help="let grpcio retry UNAVAILABLE"
    )
    parser.add_argument(
        "--consent-age",
        type=float,
        default=300.0,
        help="seconds before now that consents were given (raise for a gateway clock behind)",
    )
    parser.add_argument("--scenario", type=Path, help="platform fault scenario (JSON) to apply")
    parser.add_argument("--control-address", help="the platform's ControlService host:port")
    parser.add_argument(
        "--keep-faults", action="store_true", help="leave the scenario in place at the end"
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="write the JSON report")
    parser.add_argument("--csv", type=Path, dest="csv_path", help="write the CSV summary")
    parser.add_argument("--html", type=Path, dest="html_path", help="write the HTML page")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def options_from_args(ns: argparse.Namespace) -> LoadOptions:
    """The options given by parsed arguments.

    Raises:
        ValueError: an invalid combination or value.
    """
    open_loop = ns.rate is not None
    return LoadOptions(
        target=ns.target,
        service=ns.service,
        token=ns.token if ns.token is not None else os.environ.get(TOKEN_ENV),
        ca_file=ns.ca_file,
        cert_file=ns.cert_file,
        key_file=ns.key_file,
        mix=parse_mix(ns.mix),
        mode="open" if open_loop else "closed",
        rate=ns.rate if open_loop else 100.0,
        concurrency=ns.concurrency if ns.concurrency is not None else 8,
        duration=ns.duration,
        count=ns.count,
        workers=ns.workers,
        holders=ns.holders,
        applicants=ns.applicants,
        seed=ns.seed,
        population_size=ns.population_size,
        timeout=ns.timeout,
        client_retries=ns.client_retries,
        consent_age=ns.consent_age,
        scenario=ns.scenario,
        control_address=ns.control_address,
        clear_faults=not ns.keep_faults,
        json_path=ns.json_path,
        csv_path=ns.csv_path,
        html_path=ns.html_path,
        progress=not ns.quiet,
    )
