"""Configuration: frozen dataclasses, validated on construction, read from the environment
(and an optional JSON file) in this module only. Secrets never come from the repository."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

from essc_gateway.access.roles import OperatorRole
from essc_gateway.config_schema import (
    BankFile,
    ConfigFile,
    EnvironmentSettings,
    OperatorFile,
    SettingsError,
    read_config_file,
    read_environment,
    store_location,
)
from essc_gateway.crypto import token_digest
from essc_gateway.domain.auth_policy import AuthPolicy
from essc_gateway.domain.models import Factor, Scenario
from essc_gateway.evidence.merkle import TreeHash
from essc_gateway.keys.pkcs11_root import Pkcs11Settings
from essc_gateway.keys.root import FileRoot
from essc_gateway.keys.suites import Suite
from essc_gateway.liability.work_calendar import CalendarFileError, WorkCalendar
from essc_gateway.privacy.model import RetentionSettings
from essc_gateway.service.settings import ServiceSettings
from essc_gateway.store.location import StoreLocation
from essc_gateway.telemetry.metrics_export import MetricsSettings
from essc_gateway.transport.admission import RateLimit
from essc_gateway.transport.banks import TrustedProxy
from essc_gateway.upstream.breaker import BreakerSettings
from essc_gateway.upstream.budget import BudgetSettings
from essc_gateway.upstream.retrying import RetrySettings


class ConfigError(ValueError):
    """Configuration is missing or invalid; the message names the setting, never a secret."""


@dataclass(frozen=True)
class BankConfig:
    """One bank allowed to call the gateway."""

    bank_id: str
    """Stable identifier, recorded with every card the bank issues."""
    token_sha256: str = ""
    """SHA-256 hex digest of the bank's development bearer token."""
    certificate_subject: str = ""
    """Common name of the bank's mTLS client certificate (production)."""
    factors: Mapping[Scenario, frozenset[Factor]] = field(default_factory=dict)
    """Overrides of the default factors per business scenario (A8)."""
    rate_limit: RateLimit = field(default_factory=RateLimit)
    """Requests per second (and burst) this bank may send before being shed."""
    store_and_forward: bool = False
    """Issuance during a maintenance window is accepted as PENDING and sent after it."""
    suite: Suite = Suite.AES256_GCM_HMAC_SHA256
    """The algorithms of the bank's keys (K3): AES-256-GCM + HMAC-SHA256, or SM4-GCM +
    HMAC-SM3. A change takes effect at the bank's next key rotation; what was sealed before
    stays readable (each value names its suite)."""

    def __post_init__(self) -> None:
        if not self.bank_id or ":" in self.bank_id or "/" in self.bank_id:
            raise ConfigError("bank_id must be non-empty and contain no ':' or '/'")
        if not (self.token_sha256 or self.certificate_subject):
            raise ConfigError(f"bank {self.bank_id}: needs a token digest or a certificate")


@dataclass(frozen=True)
class OperatorConfig:
    """An operator identity and its roles (which OperatorService methods it may call, A13(1));
    never acts as a bank."""

    operator_id: str
    token_sha256: str = ""
    certificate_subject: str = ""
    roles: frozenset[OperatorRole] = frozenset()

    def __post_init__(self) -> None:
        if not self.operator_id:
            raise ConfigError("operator_id must be non-empty")
        if not self.roles:
            raise ConfigError(f"operator {self.operator_id}: needs at least one role")
        if not (self.token_sha256 or self.certificate_subject):
            raise ConfigError(f"operator {self.operator_id}: needs a token digest or a certificate")


@dataclass(frozen=True)
class TlsConfig:
    """mTLS for the bank-facing port: banks are identified by their client certificate."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path


@dataclass(frozen=True)
class RootKeyFile:
    """The root key in a local file (mode 0600): development only; production uses an HSM."""

    path: Path
    create: bool = False
    """Make it (0600) when missing: `run --dev` only."""


RootKeySettings = RootKeyFile | Pkcs11Settings
"""Where the root of the key hierarchy is (K2): a file, or an HSM over PKCS#11."""


@dataclass(frozen=True)
class PlatformTls:
    """TLS to the national platform: its CA, and this gateway's client certificate (mTLS)."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    """The name the platform's certificate carries, when it is not the address's host."""

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("ESSC_PLATFORM_CERT_FILE and ESSC_PLATFORM_KEY_FILE go together")


@dataclass(frozen=True)
class EvidenceSettings:
    key_file: Path | None = None
    """The Ed25519 private key (PEM, mode 0600) that signs checkpoints, the same file on every
    replica; None: `evidence-key.pem` in the state directory, made on first start."""
    origin: str = "essc-gateway/evidence"
    """The log's name in its checkpoints (and the key's name in its verifier key)."""
    tree_hash: TreeHash = TreeHash.SM3
    """The hash of a new log (SM3, the national commercial hash; or SHA-256)."""
    checkpoint_interval: float = 60.0
    """Seconds between two checkpoints (published only when the log grew)."""


@dataclass(frozen=True)
class GatewayConfig:
    root_key: RootKeySettings
    """The root of the key hierarchy; each bank's keys are made below it and kept wrapped
    in the store."""
    banks: tuple[BankConfig, ...]
    operators: tuple[OperatorConfig, ...] = ()
    host: str = "127.0.0.1"
    """Address the bank-facing port binds to."""
    port: int = 50051
    """Bank-facing port; 0 picks a free one."""
    health_port: int | None = None
    """Plaintext port for health probes when TLS is on (Kubernetes probes cannot do TLS)."""
    database: StoreLocation = Path("var/essc-gateway.db")
    """The store: a SQLite file (the embedded default) or a PostgreSQL server (shared by
    replicas)."""
    state_directory: Path | None = None
    """Where liability records are held while the store cannot write (`pending.py`); None:
    the SQLite file's directory, or var/ beside a PostgreSQL store."""
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite durability: FULL survives power loss; NORMAL may lose the last commits."""
    platform_address: str | None = None
    """host:port of the platform; None runs the simulated platform in-process."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """Attempts, per-attempt timeout and back-off of platform calls."""
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    """Share of retries allowed across all platform calls."""
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    """When a platform operation's circuit opens and how it probes."""
    population_seed: int = 20240320
    population_size: int = 2000
    tls: TlsConfig | None = None
    trusted_proxy: TrustedProxy | None = None
    """Banks and operators identified by a header of this proxy (which terminates TLS)."""
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    shutdown_grace: float = 5.0
    max_in_flight: int = 256
    """Requests processed at once; more are shed with RESOURCE_EXHAUSTED."""
    shared_state_refresh: float = 0.5
    """Seconds between two looks at what other replicas changed (windows, incidents, forced
    circuits, outages); PostgreSQL also notifies at once."""
    maintenance_grace: timedelta = timedelta(minutes=2)
    """After a window ends, platform failures are noted as its overrun (evidence only)."""
    maintenance_min_notice: timedelta = timedelta(hours=1)
    """A16(1)(a): a part of a bank window counts as announced in advance only if its public
    notice came at least this long before the part began."""
    evidence: EvidenceSettings = field(default_factory=EvidenceSettings)
    """The evidence log's hash, checkpoint signing key and interval."""
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    """Where metrics go: a Prometheus endpoint, OTLP (the traces' collector)."""
    platform_tls: PlatformTls | None = None
    """None: plaintext to the platform (the simulated one, or a sidecar that does TLS)."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    """How long data is kept after its purpose ended (A13(3), A14(4))."""
    key_usage_interval: timedelta = timedelta(minutes=5)
    """How often each bank's key use (unwraps) is recorded in the evidence log (K5)."""
    holder_key_cache: int = 10_000
    """Unwrapped holder keys kept in memory at most (least recently used go first)."""
    tls_reload_interval: float = 10.0
    """Seconds between two looks at the platform TLS files (the bank-facing port's files
    are looked at by each new connection's handshake)."""
    forward_interval: float = 1.0
    """Seconds between two looks at the store-and-forward queue (a queued issuance goes at
    most this long after it is due: a window's end; each look is a query)."""
    reconcile_interval: float = 5.0
    """Seconds between two settlements of issuances left in doubt."""
    work_calendar: WorkCalendar = field(default_factory=WorkCalendar.official)
    """Official holidays and make-up working days for complaint deadlines (A15)."""

    def __post_init__(self) -> None:
        if (
            self.max_in_flight < 1
            or self.forward_interval <= 0
            or self.shared_state_refresh <= 0
            or self.reconcile_interval <= 0
            or self.tls_reload_interval <= 0
        ):
            raise ConfigError(
                "max_in_flight and the intervals (forward, refresh, reconcile, TLS reload)"
                " must be positive"
            )
        if not self.banks:
            raise ConfigError("at least one bank must be configured")
        ids = [b.bank_id for b in self.banks]
        if len(set(ids)) != len(ids):
            raise ConfigError("bank ids must be unique")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be 0-65535")

    @property
    def evidence_key_file(self) -> Path:
        return self.evidence.key_file or self.held_records_directory / "evidence-key.pem"

    @property
    def held_records_directory(self) -> Path:
        if self.state_directory is not None:
            return self.state_directory
        if isinstance(self.database, Path):
            return self.database.parent
        return Path("var")

    def auth_policy(self) -> AuthPolicy:
        return AuthPolicy(per_bank={b.bank_id: b.factors for b in self.banks if b.factors})


def _root_key(env: EnvironmentSettings) -> RootKeySettings:
    module, label, pin = env.pkcs11_module, env.pkcs11_token_label, env.pkcs11_pin
    if env.root_key_file is not None:
        if module or label or pin:
            raise ConfigError("ESSC_ROOT_KEY_FILE and ESSC_PKCS11_* exclude each other")
        return RootKeyFile(env.root_key_file)
    if module is None or label is None or pin is None:
        raise ConfigError(
            "the root key: set ESSC_PKCS11_MODULE, ESSC_PKCS11_TOKEN_LABEL and ESSC_PKCS11_PIN "
            "(an HSM), or ESSC_ROOT_KEY_FILE (development)"
        )
    return Pkcs11Settings(module, label, pin, env.pkcs11_key_label)


def _bank(entry: BankFile) -> BankConfig:
    return BankConfig(
        bank_id=entry.bank_id,
        token_sha256=entry.token_sha256,
        certificate_subject=entry.certificate_subject,
        factors={scenario: frozenset(names) for scenario, names in entry.factors.items()},
        rate_limit=RateLimit(entry.rate_limit.per_second, entry.rate_limit.burst),
        store_and_forward=entry.store_and_forward,
        suite=Suite.named(entry.suite),
    )


def _trusted_proxy(file: ConfigFile) -> TrustedProxy | None:
    if file.trusted_proxy is None:
        return None
    return TrustedProxy(
        networks=tuple(file.trusted_proxy.addresses),
        identity_header=file.trusted_proxy.identity_header,
    )


def _operator(entry: OperatorFile) -> OperatorConfig:
    return OperatorConfig(
        operator_id=entry.operator_id,
        token_sha256=entry.token_sha256,
        certificate_subject=entry.certificate_subject,
        roles=frozenset(entry.roles),
    )


def _work_calendar(supplement: Path | None) -> WorkCalendar:
    try:
        return WorkCalendar.official(supplement)
    except CalendarFileError as error:
        raise ConfigError(f"ESSC_WORK_CALENDAR: {error}") from None


def _platform_tls(env: EnvironmentSettings) -> PlatformTls | None:
    if env.platform_ca_file is None:
        if env.platform_cert_file or env.platform_key_file:
            raise ConfigError("ESSC_PLATFORM_CERT_FILE needs ESSC_PLATFORM_CA_FILE")
        return None
    return PlatformTls(
        env.platform_ca_file,
        env.platform_cert_file,
        env.platform_key_file,
        env.platform_server_name,
    )


def load_root_key_settings(environ: Mapping[str, str] | None = None) -> RootKeySettings:
    """Where the root key is, from the ESSC_* variables alone (`keys init-root` needs no
    banks). Raises ConfigError naming the setting, never a value."""
    try:
        env = read_environment(dict(os.environ if environ is None else environ))
    except SettingsError as error:
        raise ConfigError(str(error)) from None
    return _root_key(env)


def load_config(environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Reads the ESSC_* variables and the JSON file named by ESSC_CONFIG (banks, operators,
    TLS, agreement versions).

    Raises:
        ConfigError: one line naming the setting (or file and field path) and what is
            wrong; never a value.
    """
    try:
        env = read_environment(dict(os.environ if environ is None else environ))
        file = read_config_file(env.config) if env.config is not None else ConfigFile()
    except SettingsError as error:
        raise ConfigError(str(error)) from None
    root_key = _root_key(env)
    tls = None
    if file.tls is not None:
        tls = TlsConfig(file.tls.cert_file, file.tls.key_file, file.tls.client_ca_file)
    try:
        settings = ServiceSettings()
        if file.agreement_versions is not None:
            settings = replace(settings, agreement_versions=dict(file.agreement_versions))
        config = GatewayConfig(
            root_key=root_key,
            banks=tuple(_bank(b) for b in file.banks),
            operators=tuple(_operator(o) for o in file.operators),
            host=env.host,
            port=env.port,
            health_port=env.health_port,
            database=store_location(env),
            state_directory=env.state_dir,
            platform_address=env.platform_address,
            tls=tls,
            trusted_proxy=_trusted_proxy(file),
            settings=settings,
            work_calendar=_work_calendar(env.work_calendar),
            maintenance_min_notice=timedelta(seconds=env.maintenance_min_notice),
            retention=RetentionSettings(
                after_termination=timedelta(days=env.retention_after_termination_days),
                guardian_after_majority=timedelta(days=env.retention_guardian_days),
            ),
            platform_tls=_platform_tls(env),
            tls_reload_interval=env.tls_reload_interval,
            holder_key_cache=env.holder_key_cache,
            metrics=MetricsSettings(
                host=env.host,
                port=env.metrics_port,
                otlp_endpoint=env.otlp_endpoint,
                otlp_ca_file=env.otlp_ca_file,
            ),
            evidence=EvidenceSettings(
                key_file=env.evidence_key_file,
                origin=env.evidence_origin,
                tree_hash=TreeHash(env.evidence_hash),
                checkpoint_interval=env.checkpoint_interval,
            ),
        )
        config.auth_policy()  # factors per scenario are checked when the policy is built
    except ConfigError:
        raise
    except ValueError as error:  # our own checks: their messages name settings, no values
        raise ConfigError(str(error)) from None
    return config


def development_environment(directory: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The root key file and bank tokens for a local run, created once in `directory`
    (mode 0600). `other-bank` uses the national suite (SM4/SM3), `demo-bank` the default.

    Returns (environment for `load_config`, identity -> bearer token to show the user).
    """
    directory.mkdir(parents=True, exist_ok=True)
    secrets_file = directory / "dev-secrets.json"
    if not secrets_file.exists():
        generated = {
            "bank_tokens": {
                "demo-bank": secrets.token_urlsafe(24),
                "other-bank": secrets.token_urlsafe(24),
            },
            "operator_token": secrets.token_urlsafe(24),
        }
        descriptor = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(generated, handle, indent=2)
    stored = json.loads(secrets_file.read_text())
    tokens: dict[str, str] = dict(stored["bank_tokens"])
    operator_token = str(stored["operator_token"])
    config_file = directory / "dev-config.json"
    config_file.write_text(
        json.dumps(
            {
                "banks": [
                    {
                        "bank_id": bank,
                        "token_sha256": token_digest(token),
                        "store_and_forward": bank == "demo-bank",
                        "suite": "aes" if bank == "demo-bank" else "sm",
                    }
                    for bank, token in tokens.items()
                ],
                "operators": [
                    {
                        "operator_id": "dev-operator",
                        "token_sha256": token_digest(operator_token),
                        # Development only: one person holds every role. In production
                        # each role is its own operator (separation of duties).
                        "roles": [role.value for role in OperatorRole],
                    }
                ],
            },
            indent=2,
        )
    )
    root_key = directory / "root.key"
    FileRoot.open(root_key, create=True)  # made 0600 on the first run
    environment = {"ESSC_ROOT_KEY_FILE": str(root_key), "ESSC_CONFIG": str(config_file)}
    return environment, {**tokens, "operator dev-operator": operator_token}
