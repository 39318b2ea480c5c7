"""`essc-gateway keys ...`: the key custodian's commands, against the store and the root
keystore the configuration names (replicas running on that store reload within a second and
work any job a command starts).

- `init-root`: provisions the root key on the HSM token named by ESSC_PKCS11_* (once, before
  the first gateway starts; a token that has it already is left as it is).
- `status`: every key version below the root, of every bank (purpose, version, suite, state,
  when and by whom it was made; never key material), and the key jobs with their progress.
- `rotate`, `retire`, `compromised`: as OperatorService's RotateKey, RetireKey and
  DeclareKeyCompromised, recorded under `--operator`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from essc_gateway.cli_ledger import store_config
from essc_gateway.clock import SystemClock
from essc_gateway.config import ConfigError, GatewayConfig, RootKeyFile, load_root_key_settings
from essc_gateway.errors import GatewayError
from essc_gateway.keys.custodian import KeyCustodian
from essc_gateway.keys.hierarchy import KeyLoadError
from essc_gateway.keys.management import key_management
from essc_gateway.keys.model import KeyJob, KeyPurpose, KeyVersion
from essc_gateway.keys.opening import open_hierarchy
from essc_gateway.keys.pkcs11_root import provision_root_key
from essc_gateway.keys.root import KeystoreError
from essc_gateway.store.opening import open_store

_PURPOSES = [p.value for p in KeyPurpose]


def add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="key management: root key, status, rotation, incidents")
    keys.add_argument("--database", type=Path, help="SQLite file (default: ESSC_DATABASE)")
    keys.add_argument("--var-dir", default="var", help="with --dev: development secrets")
    keys.add_argument("--dev", action="store_true", help="use the development root key")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    actions.add_parser(
        "init-root",
        help="make the root key on the HSM token of ESSC_PKCS11_* unless it has one",
    )
    actions.add_parser("status", help="every key version of every bank, and the key jobs")
    rotate = actions.add_parser("rotate", help="a new version of a bank's key")
    retire = actions.add_parser("retire", help="retire a version nothing depends on")
    compromised = actions.add_parser("compromised", help="declare a key version compromised")
    for action in (rotate, retire, compromised):
        action.add_argument("--bank", required=True, help="the bank whose key it is")
        action.add_argument("--purpose", required=True, choices=_PURPOSES, help="which key")
        action.add_argument(
            "--operator", required=True, help="who does it (recorded in the evidence log)"
        )
    for action in (retire, compromised):
        action.add_argument("--version", type=int, required=True, help="the key version")
    compromised.add_argument(
        "--reason", required=True, help="what happened (recorded; no personal data)"
    )


async def run_keys(options: argparse.Namespace) -> int:
    if options.keys_command == "init-root":
        return _init_root()
    try:
        config = store_config(options)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if isinstance(config.database, Path) and not config.database.is_file():
        print(f"keys: no store at {config.database}", file=sys.stderr)
        return 2
    try:
        return await _with_custodian(config, lambda custodian: _act(options, custodian))
    except (KeystoreError, KeyLoadError) as error:
        print(f"keys: {error}", file=sys.stderr)
        return 2
    except GatewayError as error:
        print(f"keys: {error.message}", file=sys.stderr)
        return 1


async def _with_custodian(
    config: GatewayConfig, act: Callable[[KeyCustodian], Awaitable[int]]
) -> int:
    store = await open_store(config.database, config.synchronous)
    clock = SystemClock()
    try:
        keys = await open_hierarchy(store, config.root_key, config.banks, clock, make_missing=False)
        try:
            # Records jobs; the replicas serving this store work them.
            custodian = key_management(store, keys, config, clock, "keys-cli").custodian
            return await act(custodian)
        finally:
            await keys.close()
    finally:
        await store.close()


async def _act(options: argparse.Namespace, custodian: KeyCustodian) -> int:
    command = options.keys_command
    if command == "status":
        _print_keys(await custodian.status())
        _print_jobs(await custodian.jobs())
        return 0
    purpose = KeyPurpose(options.purpose)
    if command == "rotate":
        key = await custodian.rotate(options.bank, purpose, options.operator)
        print(f"{key.key_id} seals from now on ({key.suite.name})")
    elif command == "retire":
        await custodian.retire(options.bank, purpose, options.version, options.operator)
        print(f"{options.bank}/{purpose.value}/v{options.version} retired")
    else:
        report = await custodian.declare_compromised(
            options.bank, purpose, options.version, options.operator, options.reason
        )
        print(f"declared {report.declared_at.isoformat(timespec='seconds')}")
        print("compromised: " + ", ".join(k.key_id for k in report.compromised))
        print("replaced by: " + (", ".join(k.key_id for k in report.replacements) or "-"))
        if report.reencryption is not None:
            _print_jobs([report.reencryption])
    return 0


def _print_keys(versions: list[KeyVersion]) -> None:
    print(f"{'key':32} {'suite':24} {'state':12} made")
    for v in versions:
        when = f"{v.created_at.isoformat(timespec='seconds')} by {v.created_by}"
        print(f"{v.key_id:32} {v.suite.name:24} {v.state.value:12} {when}")


def _print_jobs(jobs: list[KeyJob]) -> None:
    for job in jobs:
        state = "finished" if job.finished_at else f"running on {job.holder or 'no replica yet'}"
        print(f"job {job.job_id}: {job.done}/{job.total} holder keys moved, {state}")


def _init_root() -> int:
    try:
        settings = load_root_key_settings()
        if isinstance(settings, RootKeyFile):
            raise ConfigError("init-root is for an HSM: set ESSC_PKCS11_*, not ESSC_ROOT_KEY_FILE")
        made = provision_root_key(settings)
    except (ConfigError, KeystoreError) as error:
        print(f"keys: {error}", file=sys.stderr)
        return 2
    label = settings.key_label
    print(f"root key {label!r} {'made' if made else 'already on the token; left as it is'}")
    return 0
