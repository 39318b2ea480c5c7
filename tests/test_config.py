"""Bad configurations get one line naming the setting or field, never a traceback or a
value (issue 10, defect 14)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from essc_gateway.config import ConfigError, load_config
from essc_gateway.crypto import token_digest
from essc_gateway.store.location import PostgresDatabase

PIN = "pin-" + secrets.token_hex(6)


def _file(tmp_path: Path, content: dict[str, Any] | str, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _valid(tmp_path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    config: dict[str, Any] = {
        "banks": [{"bank_id": "bank-a", "token_sha256": token_digest("t")}],
        "operators": [
            {"operator_id": "ops", "token_sha256": token_digest("o"), "roles": ["operator"]}
        ],
    }
    environment = {
        "ESSC_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
        "ESSC_PKCS11_TOKEN_LABEL": "essc",
        "ESSC_PKCS11_PIN": PIN,
        "ESSC_DATABASE": str(tmp_path / "var" / "gateway.db"),
    }
    return environment, config


def test_the_store_and_a_trusted_proxy_are_read_from_one_setting_each(tmp_path: Path) -> None:
    environment, config = _valid(tmp_path)
    config["trusted_proxy"] = {"addresses": ["10.0.0.0/8", "fd00::/8"]}
    environment["ESSC_CONFIG"] = _file(tmp_path, config)
    environment["ESSC_DATABASE"] = "postgresql://gateway:secret@db.internal:5432/essc"
    loaded = load_config(environment)
    assert isinstance(loaded.database, PostgresDatabase)
    assert "secret" not in str(loaded.database)  # printable without its password
    assert "secret" not in repr(loaded)
    assert loaded.trusted_proxy is not None
    assert loaded.trusted_proxy.trusts("ipv4:10.3.4.5:1234")
    environment["ESSC_DATABASE"] = f"sqlite:///{tmp_path}/g.db"
    assert load_config(environment).database == tmp_path / "g.db"


def test_a_valid_configuration_loads(tmp_path: Path) -> None:
    environment, config = _valid(tmp_path)
    config["agreement_versions"] = {"2024-03-20": "2024-03-20", "2026-10-01": "2026-10-01"}
    environment["ESSC_CONFIG"] = _file(tmp_path, config)
    loaded = load_config(environment)
    assert [b.bank_id for b in loaded.banks] == ["bank-a"]
    assert set(loaded.settings.agreement_versions) == {"2024-03-20", "2026-10-01"}
    assert loaded.holder_key_cache == 10_000
    environment["ESSC_HOLDER_KEY_CACHE"] = "250"
    assert load_config(environment).holder_key_cache == 250


Edit = Callable[[Path, dict[str, str], dict[str, Any]], None]


def _set(name: str, value: str) -> Edit:
    def edit(tmp_path: Path, environment: dict[str, str], config: dict[str, Any]) -> None:
        environment[name] = value

    return edit


def _config(change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(tmp_path: Path, environment: dict[str, str], config: dict[str, Any]) -> None:
        change(config)

    return edit


def _tls(with_ca: bool, files: bool) -> Edit:
    def edit(tmp_path: Path, environment: dict[str, str], config: dict[str, Any]) -> None:
        names = ["cert_file", "key_file"] + (["client_ca_file"] if with_ca else [])
        config["tls"] = {}
        for name in names:
            path = tmp_path / f"{name}.pem"
            if files:
                path.write_text("-")
            config["tls"][name] = str(path)

    return edit


BAD: list[tuple[str, Edit, str]] = [
    (
        "bad JSON",
        lambda t, e, c: e.__setitem__("ESSC_CONFIG", _file(t, "{bad", "bad.json")),
        "not valid JSON",
    ),
    ("missing file", _set("ESSC_CONFIG", "/nonexistent/config.json"), "ESSC_CONFIG: Path does"),
    ("tls without client_ca_file", _tls(with_ca=False, files=True), "tls.client_ca_file: Field"),
    ("missing certificate files", _tls(with_ca=True, files=False), "tls.cert_file: Path does"),
    (
        "misspelt rate_limit key",
        _config(lambda c: c["banks"][0].__setitem__("rate_limit", {"per_secnd": 5})),
        "banks[0].rate_limit.per_secnd: unknown key",
    ),
    ("ratio not a number", _set("ESSC_TRACE_SUCCESS_RATIO", "x"), "ESSC_TRACE_SUCCESS_RATIO:"),
    ("ratio above 1", _set("ESSC_TRACE_SUCCESS_RATIO", "2"), "ESSC_TRACE_SUCCESS_RATIO:"),
    ("port not a number", _set("ESSC_PORT", "abc"), "ESSC_PORT:"),
    ("port out of range", _set("ESSC_PORT", "70000"), "ESSC_PORT:"),
    ("negative holder key cache", _set("ESSC_HOLDER_KEY_CACHE", "-1"), "ESSC_HOLDER_KEY_CACHE:"),
    ("database under a file", _set("ESSC_DATABASE", "/etc/hostname/x.db"), "ESSC_DATABASE:"),
    (
        "bank without bank_id",
        _config(lambda c: c["banks"][0].pop("bank_id")),
        "banks[0].bank_id: Field required",
    ),
    (
        "unknown factor",
        _config(lambda c: c["banks"][0].__setitem__("factors", {"PAYMENT": ["RETINA"]})),
        "banks[0].factors.PAYMENT[0]:",
    ),
    (
        "unknown scenario",
        _config(lambda c: c["banks"][0].__setitem__("factors", {"SHOPPING": ["PASSWORD"]})),
        "banks[0].factors.SHOPPING.[key]:",
    ),
    ("unknown top-level key", _config(lambda c: c.__setitem__("bankz", [])), "bankz: unknown"),
    ("no root key", lambda t, e, c: e.pop("ESSC_PKCS11_PIN"), "set ESSC_PKCS11_MODULE"),
    (
        "two roots",
        _set("ESSC_ROOT_KEY_FILE", "var/root.key"),
        "ESSC_ROOT_KEY_FILE and ESSC_PKCS11_* exclude each other",
    ),
    ("an empty PIN", _set("ESSC_PKCS11_PIN", ""), "ESSC_PKCS11_PIN"),
    (
        "an unknown suite",
        _config(lambda c: c["banks"][0].__setitem__("suite", "des")),
        "banks[0].suite:",
    ),
    ("TLS files not PEM", _tls(with_ca=True, files=True), "tls.cert_file: Value error, not"),
    (
        "no agreement version",
        _config(lambda c: c.__setitem__("agreement_versions", {})),
        "agreement_versions:",
    ),
    (
        "a scenario with no factor",
        _config(lambda c: c["banks"][0].__setitem__("factors", {"PAYMENT": []})),
        "banks[0].factors.PAYMENT:",
    ),
    (
        "config file not UTF-8",
        lambda t, e, c: (
            e.__setitem__("ESSC_CONFIG", _file(t, "", "latin1.json"))
            or (t / "latin1.json").write_bytes(b'{"banks": "\xe9"}')
        ),
        "not UTF-8",
    ),
    (
        "database is a directory",
        lambda t, e, c: e.__setitem__("ESSC_DATABASE", str(t)),
        "is a directory",
    ),
    (
        "trusted proxy address not a network",
        _config(lambda c: c.__setitem__("trusted_proxy", {"addresses": ["10.0.0.0/33"]})),
        "trusted_proxy.addresses[0]:",
    ),
    (
        "trusted proxy without an address",
        _config(lambda c: c.__setitem__("trusted_proxy", {"addresses": []})),
        "trusted_proxy.addresses:",
    ),
    (
        "database URL of another kind",
        _set("ESSC_DATABASE", "mysql://db.internal/essc"),
        "ESSC_DATABASE",
    ),
    (
        "retention of a negative number of days",
        _set("ESSC_RETENTION_AFTER_TERMINATION_DAYS", "-1"),
        "ESSC_RETENTION_AFTER_TERMINATION_DAYS",
    ),
    (
        "guardian retention not a number of days",
        _set("ESSC_RETENTION_GUARDIAN_AFTER_MAJORITY_DAYS", "a year"),
        "ESSC_RETENTION_GUARDIAN_AFTER_MAJORITY_DAYS",
    ),
    (
        "operator without a role",
        _config(lambda c: c["operators"][0].__setitem__("roles", [])),
        "operators[0].roles:",
    ),
    (
        "operator with an unknown role",
        _config(lambda c: c["operators"][0].__setitem__("roles", ["root"])),
        "operators[0].roles[0]:",
    ),
    (
        "agreement version without a date",
        _config(lambda c: c.__setitem__("agreement_versions", {"2024-03-20": "soon"})),
        "agreement_versions.2024-03-20:",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_configuration_is_one_line_naming_where(
    tmp_path: Path, edit: Edit, expected: str
) -> None:
    environment, config = _valid(tmp_path)
    edit(tmp_path, environment, config)
    if "ESSC_CONFIG" not in environment:
        environment["ESSC_CONFIG"] = _file(tmp_path, config)
    with pytest.raises(ConfigError) as raised:
        load_config(environment)
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message
    assert PIN not in message


async def test_run_with_a_bad_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_")}
    env.update({"ESSC_PORT": "abc", "ESSC_PKCS11_PIN": secrets.token_hex(2)})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "essc_gateway.cli",
        "run",
        "--dev",
        "--var-dir",
        str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        env=env,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    lines = err.decode().strip().splitlines()
    assert process.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("configuration error: ")
    assert "ESSC_PORT" in lines[0]
