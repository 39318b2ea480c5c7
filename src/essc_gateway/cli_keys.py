"""`essc-gateway keys ...`: the key custodian's commands.

- `init-root`: provisions the root key on the HSM token named by ESSC_PKCS11_* (once, before
  the first gateway starts; a token that has it already is left as it is).
- `status`: every key version below the root, of every bank: purpose, version, suite, state,
  when and by whom it was made. Never key material.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from essc_gateway.cli_ledger import store_config
from essc_gateway.config import ConfigError, RootKeyFile, load_root_key_settings
from essc_gateway.keys.pkcs11_root import provision_root_key
from essc_gateway.keys.root import KeystoreError
from essc_gateway.store.opening import open_store


def add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="key management: the root key, key status")
    keys.add_argument("--database", type=Path, help="SQLite file (default: ESSC_DATABASE)")
    keys.add_argument("--var-dir", default="var", help="with --dev: development secrets")
    keys.add_argument("--dev", action="store_true", help="use the development root key")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    actions.add_parser(
        "init-root",
        help="make the root key on the HSM token of ESSC_PKCS11_* unless it has one",
    )
    actions.add_parser("status", help="every key version of every bank (no key material)")


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
    store = await open_store(config.database, config.synchronous)
    try:
        versions = await store.key_versions()
    finally:
        await store.close()
    print(f"{'key':32} {'suite':24} {'state':12} made")
    for v in versions:
        when = f"{v.created_at.isoformat(timespec='seconds')} by {v.created_by}"
        print(f"{v.key_id:32} {v.suite.name:24} {v.state.value:12} {when}")
    return 0


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
