"""Opening the key hierarchy from configuration: the root keystore, then every bank's keys."""

from __future__ import annotations

from collections.abc import Sequence

from essc_gateway.clock import Clock
from essc_gateway.config import BankConfig, RootKeyFile, RootKeySettings
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.pkcs11_root import Pkcs11Root
from essc_gateway.keys.ports import KeyStore
from essc_gateway.keys.root import FileRoot, RootKeystore


async def open_root(settings: RootKeySettings) -> RootKeystore:
    """Raises KeystoreError naming the setting at fault (never a PIN)."""
    if isinstance(settings, RootKeyFile):
        return FileRoot.open(settings.path, create=settings.create)
    return await Pkcs11Root.open(settings)


async def open_hierarchy(
    store: KeyStore,
    settings: RootKeySettings,
    banks: Sequence[BankConfig],
    clock: Clock,
    *,
    make_missing: bool = True,
) -> KeyHierarchy:
    """The root keystore and every bank's keys, unwrapped. `make_missing`: a bank's first
    keys are made if it has none (the gateway); off, such a bank is left out (the CLIs).

    Raises:
        KeystoreError: the root keystore cannot be used.
        KeyLoadError: a stored key does not open.
    """
    root = await open_root(settings)
    hierarchy = KeyHierarchy(store, root, clock)
    try:
        await hierarchy.open_banks({b.bank_id: b.suite for b in banks}, make_missing=make_missing)
    except BaseException:
        await root.close()
        raise
    return hierarchy
