"""The root key in an HSM, reached through PKCS#11 (`python-pkcs11`); SoftHSM2 in tests.

The root is an AES-256 token key that is sensitive, never extractable and may only wrap and
unwrap (`CKM_AES_KEY_WRAP`, RFC 3394). It is provisioned once (`essc-gateway keys init-root`,
or the HSM team's own tools) and only looked up at start-up: replicas racing to generate it
would make two.

Every PKCS#11 call runs on one thread of its own: python-pkcs11 initialises the library without
locking callbacks, SoftHSM2 then does no locking, and concurrent calls crash it (measured).
One logged-in session serves the process: a login is per process and closing the session logs
every session out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from essc_gateway.keys.root import KeystoreError, UnwrapFailed, bind, unbind

T = TypeVar("T")

_WRAP = Mechanism.AES_KEY_WRAP
_SESSION_LOST = (
    pkcs11.SessionHandleInvalid,
    pkcs11.SessionClosed,
    pkcs11.UserNotLoggedIn,
    pkcs11.DeviceRemoved,
    pkcs11.TokenNotPresent,
    pkcs11.KeyHandleInvalid,
    pkcs11.WrappingKeyHandleInvalid,
    pkcs11.UnwrappingKeyHandleInvalid,
    pkcs11.ObjectHandleInvalid,
)
# A child key exists inside the HSM only for the call, as a session object whose value the
# gateway reads back: the keys below the root are used in memory, not in the HSM.
_TRANSIENT = {Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}


@dataclass(frozen=True)
class Pkcs11Settings:
    module: str
    """Path of the vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)."""
    token_label: str
    pin: str
    """The user PIN: never logged, never in an error."""
    key_label: str = "essc-gateway-root"

    def __repr__(self) -> str:
        return (
            f"Pkcs11Settings(module={self.module!r}, token_label={self.token_label!r}, "
            f"key_label={self.key_label!r})"
        )


class _Token:
    """One logged-in session on one token, and the one thread every call to it runs on;
    shared by every `Pkcs11Root` of the process (several gateways in one process log in
    once: a second login is refused, and concurrent calls crash SoftHSM2)."""

    _open: ClassVar[dict[tuple[str, str], _Token]] = {}

    def __init__(self) -> None:
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="pkcs11")
        self.session: Any = None
        self.users = 0

    @classmethod
    async def acquire(cls, settings: Pkcs11Settings) -> _Token:
        key = (settings.module, settings.token_label)
        token = cls._open.get(key)
        if token is None:
            token = cls()
            try:
                token.session = await token.call(_login, settings)
            except BaseException:
                token.thread.shutdown(wait=False)
                raise
            cls._open[key] = token
        token.users += 1
        return token

    async def call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, function, *args)

    async def relogin(self, settings: Pkcs11Settings) -> None:
        """A new session after the old one was lost (an HSM restarted, a session closed)."""
        old = self.session
        with contextlib.suppress(pkcs11.PKCS11Error):
            await self.call(old.close)
        self.session = await self.call(_login, settings)

    async def release(self, settings: Pkcs11Settings) -> None:
        self.users -= 1
        if self.users == 0:
            del self._open[(settings.module, settings.token_label)]
            await self.call(self.session.close)  # C_Logout: the last user only
            self.thread.shutdown(wait=True)


def _login(settings: Pkcs11Settings) -> Any:
    s = settings
    try:
        library = pkcs11.lib(s.module)
    except (RuntimeError, OSError):
        raise KeystoreError(f"ESSC_PKCS11_MODULE: cannot load {s.module}") from None
    try:
        token = library.get_token(token_label=s.token_label)
    except (pkcs11.NoSuchToken, RuntimeError):  # RuntimeError: StopIteration of its search
        raise KeystoreError(f"ESSC_PKCS11_TOKEN_LABEL: no token {s.token_label!r}") from None
    try:
        return token.open(rw=True, user_pin=s.pin)
    except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinInvalid):
        raise KeystoreError("ESSC_PKCS11_PIN: the token refused the PIN") from None
    except pkcs11.PKCS11Error as error:
        raise KeystoreError(f"the token refused a session ({type(error).__name__})") from None


class Pkcs11Root:
    def __init__(self, settings: Pkcs11Settings, token: _Token, root: Any) -> None:
        self._settings = settings
        self._token = token
        # python-pkcs11 composes a key's class from mixins (wrap, unwrap...) at run time.
        self._root = root

    @classmethod
    async def open(cls, settings: Pkcs11Settings) -> Pkcs11Root:
        """Logs in (once per process and token) and finds the root key.

        Raises:
            KeystoreError: no such module or token, a wrong PIN, no root key of that label.
        """
        token = await _Token.acquire(settings)
        try:
            root = await token.call(_find_root, token.session, settings.key_label)
        except BaseException:
            await token.release(settings)
            raise
        return cls(settings, token, root)

    @property
    def description(self) -> str:
        s = self._settings
        return f"pkcs11:{s.token_label}/{s.key_label}"

    def _wrap(self, material: bytes) -> bytes:
        child = self._token.session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.VALUE: material,
                **_TRANSIENT,
            }
        )
        try:
            return bytes(self._root.wrap_key(child, mechanism=_WRAP))
        finally:
            child.destroy()

    def _unwrap(self, wrapped: bytes) -> bytes:
        child = self._root.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.GENERIC_SECRET,
            wrapped,
            mechanism=_WRAP,
            template=_TRANSIENT,
        )
        try:
            return bytes(child[Attribute.VALUE])
        finally:
            child.destroy()

    async def wrap(self, key: bytes, key_id: str) -> bytes:
        try:
            return await self._reconnecting(self._wrap, bind(key, key_id))
        except pkcs11.PKCS11Error as error:
            raise KeystoreError(f"the HSM did not wrap ({type(error).__name__})") from None

    async def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        try:
            material = await self._reconnecting(self._unwrap, wrapped)
        except (pkcs11.GeneralError, pkcs11.WrappedKeyInvalid, pkcs11.WrappedKeyLenRange):
            # SoftHSM2 answers a tampered or foreign blob with CKR_GENERAL_ERROR.
            raise UnwrapFailed(f"wrapped key {key_id} does not open with the root") from None
        except pkcs11.PKCS11Error as error:
            raise KeystoreError(f"the HSM did not unwrap ({type(error).__name__})") from None
        return unbind(material, key_id)

    async def probe(self) -> None:
        try:
            self._root = await self._reconnecting(self._refind)
        except pkcs11.PKCS11Error as error:
            raise KeystoreError(f"the HSM does not answer ({type(error).__name__})") from None

    async def _reconnecting(self, function: Callable[..., T], *args: object) -> T:
        """`function` on the token thread; once more after a new login when the session or
        the root's handle was lost (an HSM restarted), which is how it recovers by itself."""
        try:
            return await self._token.call(function, *args)
        except _SESSION_LOST:
            await self._token.relogin(self._settings)
            self._root = await self._token.call(self._refind)
            return await self._token.call(function, *args)

    def _refind(self) -> Any:
        return _find_root(self._token.session, self._settings.key_label)

    async def close(self) -> None:
        await self._token.release(self._settings)


def _find_root(session: Any, key_label: str) -> Any:
    try:
        root = session.get_key(ObjectClass.SECRET_KEY, label=key_label)
    except pkcs11.NoSuchKey:
        raise KeystoreError(
            f"ESSC_PKCS11_KEY_LABEL: the token has no key {key_label!r}; provision it "
            "with `essc-gateway keys init-root`"
        ) from None
    if root[Attribute.EXTRACTABLE] or not root[Attribute.SENSITIVE]:
        raise KeystoreError(f"the root key {key_label!r} is extractable: refused")
    return root


def provision_root_key(settings: Pkcs11Settings) -> bool:
    """Generates the root key on the token if it has none (the HSM team's one-off step, or a
    test's). Returns whether it made one. Blocking; run it once, before any gateway starts.

    Raises:
        KeystoreError: no such module or token, or a wrong PIN.
    """
    session = _login(settings)  # KeystoreError naming the setting at fault
    with session:
        try:
            session.get_key(ObjectClass.SECRET_KEY, label=settings.key_label)
            return False
        except pkcs11.NoSuchKey:
            session.generate_key(
                KeyType.AES,
                256,
                label=settings.key_label,
                store=True,
                capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )
            return True
