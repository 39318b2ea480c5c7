"""Key management's parts, built once from an open hierarchy: what the request path uses
(the vault with its holder keys) and what custodians and background jobs use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from essc_gateway.clock import Clock
from essc_gateway.config import GatewayConfig
from essc_gateway.keys.custodian import KeyCustodian
from essc_gateway.keys.dual_control import DualControl
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.mover import HolderKeyMover
from essc_gateway.keys.ports import KeyStore
from essc_gateway.keys.usage import KeyUsageReport
from essc_gateway.service.vault import Vault


@dataclass(frozen=True)
class KeyManagement:
    keys: KeyHierarchy
    holder_keys: HolderKeys
    vault: Vault
    mover: HolderKeyMover
    custodian: KeyCustodian
    dual_control: DualControl
    usage: KeyUsageReport


def token_lifetime(config: GatewayConfig) -> timedelta:
    """The longest a token handed to a bank lives (a TOKENS version retires that long after)."""
    return max(config.settings.auth_token_ttl, config.settings.verification_token_ttl)


def key_management(
    store: KeyStore, keys: KeyHierarchy, config: GatewayConfig, clock: Clock, replica_id: str
) -> KeyManagement:
    holder_keys = HolderKeys(store, keys, config.holder_key_cache)
    vault = Vault(keys, holder_keys)
    mover = HolderKeyMover(store, keys, holder_keys, vault, clock, replica_id)
    custodian = KeyCustodian(
        store,
        keys,
        clock,
        {b.bank_id: b.suite for b in config.banks},
        token_lifetime(config),
        mover,
    )
    return KeyManagement(
        keys=keys,
        holder_keys=holder_keys,
        vault=vault,
        mover=mover,
        custodian=custodian,
        dual_control=DualControl(store, keys, clock),
        usage=KeyUsageReport(
            store, keys, holder_keys, clock, config.key_usage_interval, replica_id
        ),
    )
