"""The root of the hierarchy: a key that wraps and unwraps the level below and never leaves
its keystore. In an HSM over PKCS#11 (SoftHSM2 here, marker `hsm`), or in a 0600 file for
development. A wrapped key opens only as the key it was wrapped for."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pkcs11
import pytest

from essc_gateway.keys.pkcs11_root import Pkcs11Root
from essc_gateway.keys.root import FileRoot, KeystoreError, RootKeystore, UnwrapFailed
from tests.hsm import new_root


async def _round_trips(root: RootKeystore) -> None:
    for key in (os.urandom(32), os.urandom(16)):
        wrapped = await root.wrap(key, "bank-a/BANK/v1")
        assert key not in wrapped
        assert await root.unwrap(wrapped, "bank-a/BANK/v1") == key
        with pytest.raises(UnwrapFailed):  # moved onto another key's row
            await root.unwrap(wrapped, "bank-b/BANK/v1")
        with pytest.raises(UnwrapFailed):  # a changed byte
            await root.unwrap(wrapped[:-1] + bytes([wrapped[-1] ^ 1]), "bank-a/BANK/v1")


@pytest.mark.hsm
async def test_the_hsm_root_wraps_and_unwraps_and_never_gives_itself_out() -> None:
    settings = new_root()
    root = await Pkcs11Root.open(settings)
    try:
        await _round_trips(root)
    finally:
        await root.close()
    token = pkcs11.lib(settings.module).get_token(token_label=settings.token_label)
    with token.open(user_pin=settings.pin) as session:
        key = session.get_key(pkcs11.ObjectClass.SECRET_KEY, label=settings.key_label)
        assert key[pkcs11.Attribute.NEVER_EXTRACTABLE]
        assert key[pkcs11.Attribute.SENSITIVE]
        with pytest.raises(pkcs11.AttributeSensitive):
            key[pkcs11.Attribute.VALUE]


@pytest.mark.hsm
async def test_the_hsm_root_refuses_a_wrong_pin_an_absent_token_and_a_missing_key() -> None:
    settings = new_root()
    cases = [
        (replace(settings, pin="0000" + settings.pin[4:]), "ESSC_PKCS11_PIN"),
        (replace(settings, token_label="no-such-token"), "ESSC_PKCS11_TOKEN_LABEL"),
        (replace(settings, key_label="no-such-key"), "ESSC_PKCS11_KEY_LABEL"),
        (replace(settings, module="/nonexistent/libpkcs11.so"), "ESSC_PKCS11_MODULE"),
    ]
    for wrong, setting in cases:
        with pytest.raises(KeystoreError, match=setting) as raised:
            await Pkcs11Root.open(wrong)
        assert settings.pin not in str(raised.value)
        assert settings.pin not in repr(wrong)


@pytest.mark.hsm
async def test_concurrent_callers_share_the_one_pkcs11_thread_safely() -> None:
    root = await Pkcs11Root.open(new_root())
    try:
        keys = [os.urandom(32) for _ in range(200)]
        wrapped = await asyncio.gather(*(root.wrap(k, f"k{i}") for i, k in enumerate(keys)))
        opened = await asyncio.gather(*(root.unwrap(w, f"k{i}") for i, w in enumerate(wrapped)))
        assert opened == keys
    finally:
        await root.close()


async def test_the_file_root_is_made_0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "root.key"
    root = FileRoot.open(path, create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    await _round_trips(root)
    again = FileRoot.open(path, create=False)
    assert await again.unwrap(await root.wrap(b"k" * 32, "x"), "x") == b"k" * 32


def test_the_file_root_refuses_a_wider_mode_a_missing_file_and_a_short_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "root.key"
    with pytest.raises(KeystoreError, match="does not exist"):
        FileRoot.open(path, create=False)
    FileRoot.open(path, create=True)
    path.chmod(0o640)
    with pytest.raises(KeystoreError, match="chmod 600"):
        FileRoot.open(path, create=False)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeystoreError, match="32-byte key"):
        FileRoot.open(path, create=False)
