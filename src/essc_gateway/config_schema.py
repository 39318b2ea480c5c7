"""The shapes of the gateway's settings, validated with pydantic: the `ESSC_*` environment
variables and the JSON file that `ESSC_CONFIG` names. Unknown keys of the file are refused
(a misspelt key must not fall back to a default silently), and every problem is reported as
one line naming the setting or field path, never its value (values may be keys or tokens).

`config.load_config` turns what passes into the frozen dataclasses the gateway runs on.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
)

from essc_gateway.access.roles import OperatorRole
from essc_gateway.domain.models import Factor, Scenario
from essc_gateway.store.location import StoreLocation, parse_store_location

_DEFAULT_PER_SECOND = 500.0
_DEFAULT_BURST = 1000.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitFile(_Strict):
    per_second: Annotated[float, Field(gt=0)] = _DEFAULT_PER_SECOND
    burst: Annotated[float, Field(ge=1)] = _DEFAULT_BURST


class BankFile(_Strict):
    bank_id: Annotated[str, Field(min_length=1, pattern=r"^[^:\s]+$")]
    token_sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""
    certificate_subject: str = ""
    factors: dict[Scenario, Annotated[list[Factor], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    rate_limit: RateLimitFile = RateLimitFile()
    store_and_forward: bool = False
    suite: Literal["aes", "sm", "AES256_GCM_HMAC_SHA256", "SM4_GCM_HMAC_SM3"] = "aes"


class OperatorFile(_Strict):
    operator_id: Annotated[str, Field(min_length=1)]
    token_sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""
    certificate_subject: str = ""
    roles: Annotated[list[OperatorRole], Field(min_length=1)]
    """What the operator may do (A13(1)): operator, auditor, privacy_officer, key_custodian."""


class TlsFile(_Strict):
    cert_file: FilePath
    key_file: FilePath
    client_ca_file: FilePath

    @field_validator("cert_file", "client_ca_file")
    @classmethod
    def _certificates(cls, path: Path) -> Path:
        try:
            x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError:
            raise ValueError("not a PEM certificate") from None
        return path

    @field_validator("key_file")
    @classmethod
    def _private_key(cls, path: Path) -> Path:
        try:
            serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError):
            raise ValueError("not an unencrypted PEM private key") from None
        return path


class TrustedProxyFile(_Strict):
    """A TLS-terminating proxy (nginx) in front of the replicas: the bank's verified
    certificate common name comes in `identity_header`, believed only from `addresses`."""

    addresses: Annotated[list[IPvAnyNetwork], Field(min_length=1)]
    identity_header: Annotated[str, Field(pattern=r"^x-[a-z0-9-]+$")] = "x-essc-client-cn"


class ConfigFile(_Strict):
    """The JSON file of `ESSC_CONFIG`."""

    banks: list[BankFile] = Field(default_factory=list)
    operators: list[OperatorFile] = Field(default_factory=list)
    tls: TlsFile | None = None
    trusted_proxy: TrustedProxyFile | None = None
    agreement_versions: (
        Annotated[dict[Annotated[str, Field(min_length=1)], date], Field(min_length=1)] | None
    ) = None
    """User-agreement versions a consent may name, each with the day it took effect (A12)."""


class EnvironmentSettings(BaseModel):
    """The `ESSC_*` variables (other variables are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=False)

    root_key_file: Annotated[Path | None, Field(alias="ESSC_ROOT_KEY_FILE")] = None
    """The root key in a 0600 file (development); or the HSM settings below."""
    pkcs11_module: Annotated[str | None, Field(alias="ESSC_PKCS11_MODULE", min_length=1)] = None
    pkcs11_token_label: Annotated[
        str | None, Field(alias="ESSC_PKCS11_TOKEN_LABEL", min_length=1)
    ] = None
    pkcs11_pin: Annotated[str | None, Field(alias="ESSC_PKCS11_PIN", min_length=1)] = None
    pkcs11_key_label: Annotated[str, Field(alias="ESSC_PKCS11_KEY_LABEL", min_length=1)] = (
        "essc-gateway-root"
    )
    config: Annotated[FilePath | None, Field(alias="ESSC_CONFIG")] = None
    host: Annotated[str, Field(alias="ESSC_HOST", min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(alias="ESSC_PORT", ge=0, le=65535)] = 50051
    health_port: Annotated[int | None, Field(alias="ESSC_HEALTH_PORT", ge=0, le=65535)] = None
    database: Annotated[str, Field(alias="ESSC_DATABASE", min_length=1)] = "var/essc-gateway.db"
    """A SQLite file (a path or sqlite:///path) or postgresql://user@host:port/database."""
    state_dir: Annotated[Path | None, Field(alias="ESSC_STATE_DIR")] = None
    platform_address: Annotated[str | None, Field(alias="ESSC_PLATFORM_ADDRESS")] = None
    work_calendar: Annotated[FilePath | None, Field(alias="ESSC_WORK_CALENDAR")] = None
    otlp_endpoint: Annotated[str | None, Field(alias="ESSC_OTLP_ENDPOINT")] = None
    otlp_ca_file: Annotated[FilePath | None, Field(alias="ESSC_OTLP_CA_FILE")] = None
    traces_file: Annotated[str | None, Field(alias="ESSC_TRACES_FILE")] = None
    trace_success_ratio: Annotated[
        float, Field(alias="ESSC_TRACE_SUCCESS_RATIO", ge=0.0, le=1.0)
    ] = 0.1
    platform_ca_file: Annotated[FilePath | None, Field(alias="ESSC_PLATFORM_CA_FILE")] = None
    platform_cert_file: Annotated[FilePath | None, Field(alias="ESSC_PLATFORM_CERT_FILE")] = None
    platform_key_file: Annotated[FilePath | None, Field(alias="ESSC_PLATFORM_KEY_FILE")] = None
    platform_server_name: Annotated[
        str | None, Field(alias="ESSC_PLATFORM_SERVER_NAME", min_length=1)
    ] = None
    tls_reload_interval: Annotated[
        float, Field(alias="ESSC_TLS_RELOAD_INTERVAL", gt=0, le=3600)
    ] = 10.0
    """Seconds between two looks at the platform TLS files for a rotated certificate."""
    metrics_port: Annotated[int | None, Field(alias="ESSC_METRICS_PORT", ge=0, le=65535)] = None
    """Prometheus `/metrics` over plaintext HTTP; unset: none; 0: any free port."""
    holder_key_cache: Annotated[int, Field(alias="ESSC_HOLDER_KEY_CACHE", ge=0, le=10_000_000)] = (
        10_000
    )
    """Unwrapped holder keys kept in memory (about 3 KB each, measured by the soak)."""
    maintenance_min_notice: Annotated[
        int, Field(alias="ESSC_MAINTENANCE_MIN_NOTICE_SECONDS", ge=0, le=90 * 86400)
    ] = 3600
    retention_after_termination_days: Annotated[
        int, Field(alias="ESSC_RETENTION_AFTER_TERMINATION_DAYS", ge=0, le=36500)
    ] = 3 * 365
    """A13(3), A14(4): days a holder whose every card is terminated is kept, then erased."""
    retention_guardian_days: Annotated[
        int, Field(alias="ESSC_RETENTION_GUARDIAN_AFTER_MAJORITY_DAYS", ge=0, le=36500)
    ] = 365
    """A13(3): days a guardian's data is kept after the holder came of age."""
    evidence_key_file: Annotated[Path | None, Field(alias="ESSC_EVIDENCE_KEY_FILE")] = None
    evidence_origin: Annotated[
        str, Field(alias="ESSC_EVIDENCE_ORIGIN", pattern=r"^[^\s+]{1,200}$")
    ] = "essc-gateway/evidence"
    evidence_hash: Annotated[Literal["sm3", "sha256"], Field(alias="ESSC_EVIDENCE_HASH")] = "sm3"
    checkpoint_interval: Annotated[
        float, Field(alias="ESSC_CHECKPOINT_INTERVAL", gt=0, le=86400)
    ] = 60.0


class SettingsError(ValueError):
    """One line: where (a variable, or the file and a field path) and what is wrong."""


def read_environment(environ: dict[str, str]) -> EnvironmentSettings:
    """Validates the `ESSC_*` variables; empty ones count as unset."""
    given = {k: v for k, v in environ.items() if k.startswith("ESSC_") and v.strip() != ""}
    try:
        settings = EnvironmentSettings.model_validate(given)
    except ValidationError as error:
        raise SettingsError(_describe(error, prefix="")) from None
    try:
        location = parse_store_location(settings.database)
    except ValueError as error:
        raise SettingsError(f"ESSC_DATABASE: {error}") from None
    if isinstance(location, Path):
        _check_database_directory(location)
    return settings


def store_location(settings: EnvironmentSettings) -> StoreLocation:
    return parse_store_location(settings.database)


def _check_database_directory(database: Path) -> None:
    """The store's directory exists, or can be made under the nearest one that does."""
    if str(database) == ":memory:":
        return
    if database.is_dir():
        raise SettingsError(f"ESSC_DATABASE: {database} is a directory, not a database file")
    nearest = database.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise SettingsError(f"ESSC_DATABASE: {nearest} is not a directory")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise SettingsError(f"ESSC_DATABASE: {nearest} is not writable")


def read_config_file(path: Path) -> ConfigFile:
    """Reads and validates the JSON file of `ESSC_CONFIG`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"ESSC_CONFIG {path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"ESSC_CONFIG {path}: not UTF-8 text") from None
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingsError(
            f"ESSC_CONFIG {path}: not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    try:
        return ConfigFile.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(_describe(error, prefix=f"ESSC_CONFIG {path}: ")) from None


def _describe(error: ValidationError, prefix: str) -> str:
    """Every problem as `where: what`, joined by "; ". Never the input value."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        where = _path(item["loc"])
        what = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{prefix}{where}: {what}")
    return "; ".join(problems)


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"
