"""`essc-gateway ledger ...`: audit the evidence log and print reports from the store itself,
without a running gateway (for auditors, and for the day the gateway is down). They write
nothing but, for a report, the signed checkpoint of the log as it is that the report cites
(kept, so that proofs from it can be asked for later); records of an incident are amended
by gateways only (`flush-held` appends held records, which is its purpose)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from essc_gateway.clock import SystemClock
from essc_gateway.composition import build_records
from essc_gateway.config import ConfigError, GatewayConfig, development_environment, load_config
from essc_gateway.errors import GatewayError
from essc_gateway.evidence.audit import audit_log
from essc_gateway.evidence.checkpoints import Checkpointer
from essc_gateway.evidence.signing_key import SigningKeyError, load_signer
from essc_gateway.keys.hierarchy import KeyLoadError
from essc_gateway.keys.opening import open_hierarchy
from essc_gateway.keys.root import KeystoreError
from essc_gateway.liability import render
from essc_gateway.liability.pending import PendingRecords
from essc_gateway.store.opening import GatewayStore, open_store


def add_ledger_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = commands.add_parser("ledger", help="verify the liability ledger, print reports")
    ledger.add_argument("--database", type=Path, help="SQLite file (default: ESSC_DATABASE)")
    ledger.add_argument("--var-dir", default="var", help="with --dev: development secrets")
    ledger.add_argument("--dev", action="store_true", help="use the development keys")
    actions = ledger.add_subparsers(dest="ledger_command", required=True)
    check = actions.add_parser(
        "verify", help="audit the evidence log: entries, tree, checkpoints, record rows"
    )
    check.add_argument(
        "--kept-checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a signed checkpoint kept earlier (e.g. from a statement); repeatable",
    )
    report = actions.add_parser("report", help="failed requests and their clauses")
    report.add_argument("--bank", help="one bank (default: every bank)")
    report.add_argument(
        "--since", type=datetime.fromisoformat, help="ISO time (default: a day ago)"
    )
    report.add_argument("--until", type=datetime.fromisoformat, help="ISO time (default: now)")
    report.add_argument("--holder-id", action=_RefuseIdOnCommandLine, help=argparse.SUPPRESS)
    report.add_argument(
        "--holder-id-file",
        type=argparse.FileType("r"),
        help="a complaint: a file whose first line is the holder's ID number, or - for "
        "standard input (never on the command line, where ps and shell history keep it)",
    )
    report.add_argument(
        "--complaint-accepted-on",
        type=date.fromisoformat,
        help="YYYY-MM-DD: the report gives the A15 due date",
    )
    report.add_argument(
        "--format", choices=("json", "table", "html"), default="table", help="the output"
    )
    held = actions.add_parser(
        "flush-held",
        help="append the liability records a replica held while the store could not write "
        "(its state directory, e.g. the volume of a replica scaled down for good)",
    )
    held.add_argument("directory", type=Path, help="the replica's ESSC_STATE_DIR")
    statement = actions.add_parser("statement", help="a bank's monthly statement")
    statement.add_argument("--bank", required=True, help="the bank")
    statement.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    statement.add_argument(
        "--format", choices=("json", "table"), default="table", help="the output"
    )


def store_config(options: argparse.Namespace) -> GatewayConfig:
    """The configuration of the store the options name (`--database`, `--dev`, ...)."""
    import os  # noqa: PLC0415 - the environment is read here and in config only

    environment = dict(os.environ)
    if options.dev:
        environment = {**development_environment(Path(options.var_dir))[0], **environment}
    if options.database:
        environment["ESSC_DATABASE"] = str(options.database)
    else:  # where `run` keeps it
        environment.setdefault("ESSC_DATABASE", str(Path(options.var_dir) / "essc-gateway.db"))
    return load_config(environment)


class _RefuseIdOnCommandLine(argparse.Action):
    """Refuses an ID number given on the command line, without echoing it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "--holder-id is not accepted (ps and shell history would keep the ID number): "
            "pass it on standard input with --holder-id-file -"
        )


def _month(value: str) -> str:
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month (YYYY-MM)") from None
    return value


def _holder_id(options: argparse.Namespace) -> str | None:
    if options.holder_id_file is None:
        return None
    with options.holder_id_file as source:
        return source.readline().strip() or None


def _aware(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _flush_held(store: GatewayStore, directory: Path) -> int:
    """Appends a replica's held records (once each: appends are idempotent by request id,
    so a replica that comes back with the same volume appends none twice)."""
    pending = PendingRecords(directory)
    pending.load()
    found = len(pending)
    done = await pending.flush(store.append_liability_if_absent)
    print(f"held records: {found}, handled: {done}, still held: {len(pending)}")
    return 0 if not len(pending) else 1


class _NoStore(Exception):
    """The configured SQLite file does not exist: a reader must not create an empty one."""


async def run_ledger(options: argparse.Namespace) -> int:
    try:
        config = store_config(options)
        if isinstance(config.database, Path) and not config.database.is_file():
            # A reader must not create an empty store.
            raise _NoStore(f"no store at {config.database}")
        if options.ledger_command == "flush-held" and not options.directory.is_dir():
            raise _NoStore(f"no directory {options.directory}")
        signer = load_signer(config.evidence_key_file, config.evidence.origin)
    except (ConfigError, SigningKeyError, _NoStore) as error:
        prefix = "configuration error" if isinstance(error, ConfigError) else "ledger"
        print(f"{prefix}: {error}", file=sys.stderr)
        return 2
    clock = SystemClock()
    store = await open_store(
        config.database, config.synchronous, evidence_hash=config.evidence.tree_hash
    )
    checkpointer = Checkpointer(store, signer, clock)
    closing = contextlib.AsyncExitStack()
    try:
        if options.ledger_command == "flush-held":
            return await _flush_held(store, options.directory)
        if options.ledger_command == "verify":
            kept = [path.read_bytes() for path in options.kept_checkpoint]
            result = await audit_log(store, checkpointer.verifier, kept)
            print(f"entries: {result.entries}\nroot: {result.root}")
            for problem in result.problems:
                print(f"PROBLEM {problem}")
            print("evidence log intact" if result.intact else "EVIDENCE LOG TAMPERED")
            return 0 if result.intact else 1
        try:
            keys = await open_hierarchy(
                store, config.root_key, config.banks, clock, make_missing=False
            )
        except (KeystoreError, KeyLoadError) as error:
            print(f"ledger: {error}", file=sys.stderr)
            return 2
        closing.push_async_callback(keys.close)
        records = build_records(config, store, keys, signer, clock, replica_id="ledger-command")
        await records.calendar.load()
        await records.incidents.load()
        reports = records.reports
        if options.ledger_command == "statement":
            statement = await reports.monthly(options.bank, options.month)
            _, body = render.render_statement(statement, options.format)
        else:
            now = clock.now()
            report = await reports.report(
                _aware(options.since, now - timedelta(days=1)),
                _aware(options.until, now),
                bank_id=options.bank,
                holder_id=_holder_id(options),
                complaint_accepted_on=options.complaint_accepted_on,
            )
            _, body = render.render_report(report, options.format)
        print(body)
        return 0
    except GatewayError as error:  # e.g. a due date beyond the known calendar years
        print(f"ledger: {error.message}", file=sys.stderr)
        return 1
    finally:
        await closing.aclose()
        await store.close()
