"""`essc-gateway evidence ...`: the verifiable evidence log from the command line.

`verify` is the offline verifier a bank's lawyer, a regulator or a court runs: it needs no
database and no gateway, only a bundle, the bank's verifier key and any checkpoints kept.
The other commands read the store (like `ledger`): the verifier key, a checkpoint, a bundle,
an inclusion or a consistency proof."""

from __future__ import annotations

import argparse
import base64
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from essc_gateway.cli_ledger import store_config
from essc_gateway.clock import SystemClock
from essc_gateway.composition import build_records
from essc_gateway.config import ConfigError, GatewayConfig
from essc_gateway.errors import GatewayError
from essc_gateway.evidence.service import EvidenceService
from essc_gateway.evidence.signed_note import NoteSigner
from essc_gateway.evidence.signing_key import SigningKeyError, load_signer
from essc_gateway.evidence.verify import render_verdict, verify_bundle
from essc_gateway.keys.hierarchy import KeyLoadError
from essc_gateway.keys.opening import open_hierarchy
from essc_gateway.keys.root import KeystoreError
from essc_gateway.store.opening import open_store


def add_evidence_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evidence = commands.add_parser(
        "evidence", help="the verifiable evidence log: verify bundles offline, proofs"
    )
    evidence.add_argument("--database", type=Path, help="the store (default: ESSC_DATABASE)")
    evidence.add_argument("--var-dir", default="var", help="with --dev: development secrets")
    evidence.add_argument("--dev", action="store_true", help="use the development keys")
    actions = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = actions.add_parser("verify", help="check an evidence bundle offline")
    verify.add_argument("bundle", type=Path, help="the evidence bundle (JSON)")
    key = verify.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", help="the bank's verifier key (<origin>+<id>+<key>)")
    key.add_argument("--key-file", type=Path, help="a file holding the verifier key")
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a signed checkpoint kept earlier; the bundle must prove it; repeatable",
    )
    verify.add_argument(
        "--min-notice-seconds",
        type=int,
        help="the agreement's minimum notice of a maintenance window (default: as recorded)",
    )
    actions.add_parser("key", help="print the verifier key of the evidence signing key")
    actions.add_parser("checkpoint", help="publish and print a checkpoint of the log now")
    bundle = actions.add_parser("bundle", help="write the evidence bundle of some requests")
    bundle.add_argument("--request-id", action="append", default=[], help="repeatable")
    bundle.add_argument("--bank", help="one bank's failed requests")
    bundle.add_argument(
        "--since", type=datetime.fromisoformat, help="ISO time (default: 31 days ago)"
    )
    bundle.add_argument("--until", type=datetime.fromisoformat, help="ISO time (default: now)")
    bundle.add_argument(
        "--holder-id-file",
        type=argparse.FileType("r"),
        help="a complaint: a file whose first line is the holder's ID number, or -",
    )
    bundle.add_argument(
        "--known-size",
        type=int,
        action="append",
        default=[],
        help="the size of a checkpoint the reader keeps: the bundle proves the log extends it",
    )
    bundle.add_argument("--output", "-o", type=Path, required=True, help="the bundle file")
    prove = actions.add_parser("prove", help="the inclusion proof of one request's record")
    prove.add_argument("--request-id", required=True, help="a ledger_request_id")
    consistency = actions.add_parser("consistency", help="a consistency proof between sizes")
    consistency.add_argument(
        "--old-size", type=int, required=True, help="the size of the earlier checkpoint"
    )
    consistency.add_argument("--new-size", type=int, default=0, help="0: a checkpoint of now")


def run_verify(options: argparse.Namespace) -> int:
    """The offline verifier: exit 0 when everything checks, 1 when anything fails."""
    try:
        bundle = options.bundle.read_bytes()
        key = options.key or options.key_file.read_text()
        kept = [path.read_bytes() for path in options.checkpoint]
    except OSError as error:
        print(f"FAILED: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    min_notice = (
        None
        if options.min_notice_seconds is None
        else timedelta(seconds=options.min_notice_seconds)
    )
    verdict = verify_bundle(bundle, key, kept, min_notice)
    sys.stdout.write(render_verdict(verdict))
    return 0 if verdict.ok else 1


async def run_evidence(options: argparse.Namespace) -> int:
    if options.evidence_command == "verify":
        return run_verify(options)
    try:
        config = store_config(options)
        signer = load_signer(config.evidence_key_file, config.evidence.origin)
    except (ConfigError, SigningKeyError) as error:
        print(f"evidence: {error}", file=sys.stderr)
        return 2
    if options.evidence_command == "key":
        print(signer.verifier_key())
        return 0
    if isinstance(config.database, Path) and not config.database.is_file():
        print(f"evidence: no store at {config.database}", file=sys.stderr)
        return 2
    return await _with_store(options, config, signer)


async def _with_store(
    options: argparse.Namespace, config: GatewayConfig, signer: NoteSigner
) -> int:
    store = await open_store(
        config.database, config.synchronous, evidence_hash=config.evidence.tree_hash
    )
    clock = SystemClock()
    try:
        keys = await open_hierarchy(store, config.root_key, config.banks, clock, make_missing=False)
    except (KeystoreError, KeyLoadError) as error:
        await store.close()
        print(f"evidence: {error}", file=sys.stderr)
        return 2
    service = build_records(
        config, store, keys, signer, clock, replica_id="evidence-command"
    ).evidence
    try:
        return await _run(options, service)
    except GatewayError as error:
        print(f"evidence: {error.message}", file=sys.stderr)
        return 1
    finally:
        await keys.close()
        await store.close()


async def _run(options: argparse.Namespace, service: EvidenceService) -> int:
    command = options.evidence_command
    if command == "checkpoint":
        sys.stdout.write((await service.checkpointer.publish()).note.decode())
    elif command == "prove":
        found = await service.inclusion(options.request_id)
        print(f"index: {found.entry.index}\ntree size: {found.checkpoint.size}")
        print("entry: " + found.entry.body.decode())
        print("proof: " + " ".join(base64.b64encode(h).decode() for h in found.proof))
        sys.stdout.write(found.checkpoint.note.decode())
    elif command == "consistency":
        proof, note = await service.consistency(options.old_size, options.new_size)
        print("proof: " + " ".join(base64.b64encode(h).decode() for h in proof))
        sys.stdout.write(note.decode())
    else:
        request_ids = list(options.request_id)
        if not request_ids:
            now = datetime.now(UTC)
            holder = None
            if options.holder_id_file is not None:
                with options.holder_id_file as source:
                    holder = source.readline().strip() or None
            request_ids = await service.request_ids(
                _aware(options.since, now - timedelta(days=31)),
                _aware(options.until, now),
                options.bank,
                holder,
            )
        options.output.write_bytes(await service.bundle(request_ids, options.known_size))
        print(f"{len(set(request_ids))} request(s) in {options.output}")
    return 0


def _aware(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value if value.tzinfo else value.replace(tzinfo=UTC)
