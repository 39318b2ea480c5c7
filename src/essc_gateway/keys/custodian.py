"""What a key custodian does to the hierarchy (K5-K7): rotate a key at any level, retire a
version nothing depends on any more, declare a key compromised. Each change is one store
transaction with its key events (the evidence log) and reaches every replica, which reloads.

- Rotating a DATA, LOOKUP or TOKENS key adds a version, in the bank's configured suite (so a
  bank moves to another suite by rotating): it seals from then on; older versions still open.
  Holder keys and requests sealed under an older DATA version are moved by the re-wrap job.
- Rotating a bank key re-wraps every key below it under the new one (no data is touched) and
  retires the old bank key in the same transaction: nothing is left under it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from essc_gateway.clock import Clock
from essc_gateway.errors import ErrorReason, FieldViolation, InvalidRequest, PreconditionFailed
from essc_gateway.keys.hierarchy import KeyHierarchy, key_bytes, open_child, seal_child
from essc_gateway.keys.model import (
    KeyChange,
    KeyEvent,
    KeyEventKind,
    KeyJob,
    KeyPurpose,
    KeyState,
    KeyVersion,
    Rewrap,
    StateChange,
    key_id,
)
from essc_gateway.keys.mover import HolderKeyMover
from essc_gateway.keys.ports import KeyStore
from essc_gateway.keys.suites import Suite


@dataclass(frozen=True, slots=True)
class KeyIncidentReport:
    """What a key incident hit, what replaced it, how far the re-encryption has got."""

    compromised: tuple[KeyVersion, ...]
    replacements: tuple[KeyVersion, ...]
    reencryption: KeyJob | None
    declared_at: datetime


class KeyCustodian:
    def __init__(
        self,
        store: KeyStore,
        keys: KeyHierarchy,
        clock: Clock,
        suites: Mapping[str, Suite],
        token_lifetime: timedelta,
        mover: HolderKeyMover,
    ) -> None:
        self._store = store
        self._keys = keys
        self._mover = mover
        self._clock = clock
        self._suites = dict(suites)
        self._token_lifetime = token_lifetime
        """The longest a token lives: a TOKENS version retires only that long after the next."""

    async def status(self) -> list[KeyVersion]:
        return await self._store.key_versions()

    async def rotate(self, bank_id: str, purpose: KeyPurpose, operator: str) -> KeyVersion:
        """A new version of the bank's `purpose` key, sealing from now on.

        Raises:
            InvalidRequest: an unknown bank.
        """
        return await self._rotate(bank_id, purpose, operator, move_data=True)

    async def _rotate(
        self, bank_id: str, purpose: KeyPurpose, operator: str, *, move_data: bool
    ) -> KeyVersion:
        versions = await self._versions_of(bank_id)
        if purpose is KeyPurpose.BANK:
            change, new = await self._rotate_bank_key(bank_id, versions, operator)
        else:
            change, new = await self._rotate_child(bank_id, purpose, versions, operator)
        await self._store.change_keys(change)
        await self._keys.reload()
        if purpose in (KeyPurpose.DATA, KeyPurpose.LOOKUP) and move_data:  # in the background
            await self._mover.start(bank_id, new.version, rekey=False, purpose=purpose)
        return new

    async def declare_compromised(
        self, bank_id: str, purpose: KeyPurpose, version: int, operator: str, reason: str
    ) -> KeyIncidentReport:
        """A key incident (K7): from now on nothing is sealed with the version and tokens it
        sealed are refused; a new version replaces it at once; for a bank key, every key
        below it is replaced too; what DATA keys sealed is re-encrypted under fresh holder
        keys in the background. Returns the incident report.

        Raises:
            InvalidRequest: an unknown bank or version.
        """
        if not reason.strip():
            raise InvalidRequest([FieldViolation("reason", "is required", "REQUIRED")])
        declared_at = self._clock.now()
        versions = await self._versions_of(bank_id)
        target = _find(versions, purpose, version)
        _refuse_destroyed(target)
        compromised = [target]
        if purpose is KeyPurpose.BANK:  # everything it sealed is exposed with it
            compromised += [
                v for v in versions
                if v.purpose is not KeyPurpose.BANK and v.state is KeyState.ACTIVE
                and v.parent_version == version
            ]  # fmt: skip
        states = [
            StateChange(bank_id, v.purpose, v.version, KeyState.COMPROMISED)
            for v in compromised
            if v.state is not KeyState.RETIRED
        ]
        events = [self._event(KeyEventKind.COMPROMISED, v, operator, reason) for v in compromised]
        # The versions in use that are hit are replaced in the same transaction: from its
        # commit on, every replica seals with the new ones and refuses the compromised.
        hit = {v.purpose for v in compromised if v == _current(versions, v.purpose)}
        new: list[KeyVersion] = []
        if KeyPurpose.BANK in hit:
            bank, bank_key = await self._new_bank_key(bank_id, versions, operator)
            new.append(bank)
        else:
            bank = _current(versions, KeyPurpose.BANK)
            bank_key = await self._keys.bank_key(bank)
        for purpose_hit in sorted(hit - {KeyPurpose.BANK}):
            new.append(self._new_child(bank_id, purpose_hit, versions, bank, bank_key, operator))
        events += [self._event(KeyEventKind.ROTATED, v, operator, reason) for v in new]
        await self._store.change_keys(
            KeyChange(new=tuple(new), states=tuple(states), events=tuple(events))
        )
        await self._keys.reload()
        job = None
        if any(v.purpose is KeyPurpose.DATA for v in compromised):
            data = _current([*versions, *new], KeyPurpose.DATA)
            job = await self._mover.start(bank_id, data.version, rekey=True)
        if any(v.purpose is KeyPurpose.LOOKUP for v in compromised):  # off the leaked tokens
            lookup = _current([*versions, *new], KeyPurpose.LOOKUP)
            await self._mover.start(bank_id, lookup.version, rekey=False, purpose=KeyPurpose.LOOKUP)
        return KeyIncidentReport(tuple(compromised), tuple(new), job, declared_at)

    async def jobs(self) -> list[KeyJob]:
        return await self._store.key_jobs()

    async def retire(self, bank_id: str, purpose: KeyPurpose, version: int, operator: str) -> None:
        """Retires a version nothing depends on any more.

        Raises:
            PreconditionFailed: KEY_IN_USE, with how many values still depend on it; or the
                version seals now (rotate first).
        """
        versions = await self._versions_of(bank_id)
        target = _find(versions, purpose, version)
        if target.state is KeyState.RETIRED:
            return
        _refuse_destroyed(target)
        newer = [v for v in versions if v.purpose is purpose and v.version > version]
        if purpose is KeyPurpose.BANK or not newer:
            raise PreconditionFailed(
                f"{target.key_id} is the version in use: rotate first",
                reason=ErrorReason.KEY_IN_USE,
                metadata={"key_id": target.key_id},
            )
        remaining = await self._store.sealed_under(bank_id, purpose, version)
        if purpose is KeyPurpose.TOKENS:
            since = min(v.created_at for v in newer)
            if self._clock.now() < since + self._token_lifetime:
                remaining = max(remaining, 1)  # tokens it sealed may still be presented
        if remaining:
            raise PreconditionFailed(
                f"{target.key_id} still has {remaining} values under it",
                reason=ErrorReason.KEY_IN_USE,
                metadata={"key_id": target.key_id, "remaining": str(remaining)},
            )
        await self._store.change_keys(
            KeyChange(
                states=(StateChange(bank_id, purpose, version, KeyState.RETIRED),),
                events=(self._event(KeyEventKind.RETIRED, target, operator),),
            )
        )
        await self._keys.reload()

    async def _versions_of(self, bank_id: str) -> list[KeyVersion]:
        if bank_id not in self._suites:
            raise InvalidRequest([FieldViolation("bank_id", "no such bank", "UNKNOWN_BANK")])
        versions = [v for v in await self._store.key_versions() if v.bank_id == bank_id]
        if not versions:  # its keys are made by the gateway's first start with the bank
            raise InvalidRequest([FieldViolation("bank_id", "has no keys yet", "NO_KEYS")])
        return versions

    async def _rotate_child(
        self, bank_id: str, purpose: KeyPurpose, versions: Sequence[KeyVersion], operator: str
    ) -> tuple[KeyChange, KeyVersion]:
        bank = _current(versions, KeyPurpose.BANK)
        bank_key = await self._keys.bank_key(bank)
        new = self._new_child(bank_id, purpose, versions, bank, bank_key, operator)
        event = self._event(KeyEventKind.ROTATED, new, operator, f"sealed by {bank.key_id}")
        return KeyChange(new=(new,), events=(event,)), new

    def _new_child(
        self,
        bank_id: str,
        purpose: KeyPurpose,
        versions: Sequence[KeyVersion],
        bank: KeyVersion,
        bank_key: bytes,
        operator: str,
    ) -> KeyVersion:
        """The next version of a purpose key, in the bank's configured suite."""
        suite = self._suites[bank_id]
        version = 1 + max(v.version for v in versions if v.purpose is purpose)
        child_id = key_id(bank_id, purpose, version)
        child = os.urandom(key_bytes(purpose, suite))
        return KeyVersion(
            bank_id, purpose, version, suite,
            seal_child(bank_key, bank.suite, child, child_id),
            bank.version, KeyState.ACTIVE, self._clock.now(), operator,
        )  # fmt: skip

    async def _new_bank_key(
        self, bank_id: str, versions: Sequence[KeyVersion], operator: str
    ) -> tuple[KeyVersion, bytes]:
        """The next bank key, wrapped by the root (and held: no round trip to read it)."""
        suite = self._suites[bank_id]
        version = 1 + max(v.version for v in versions if v.purpose is KeyPurpose.BANK)
        new_key = os.urandom(suite.key_bytes)
        new = KeyVersion(
            bank_id, KeyPurpose.BANK, version, suite,
            await self._keys.root.wrap(new_key, key_id(bank_id, KeyPurpose.BANK, version)),
            None, KeyState.ACTIVE, self._clock.now(), operator,
        )  # fmt: skip
        self._keys.hold_bank_key(bank_id, version, new_key)
        return new, new_key

    async def _rotate_bank_key(
        self, bank_id: str, versions: Sequence[KeyVersion], operator: str
    ) -> tuple[KeyChange, KeyVersion]:
        suite = self._suites[bank_id]
        olds = [
            v
            for v in versions
            if v.purpose is KeyPurpose.BANK
            and v.state not in (KeyState.RETIRED, KeyState.DESTROYED)
        ]
        active = [v for v in olds if v.state is KeyState.ACTIVE]
        old_keys = {v.version: (v.suite, await self._keys.bank_key(v)) for v in olds}
        new, new_key = await self._new_bank_key(bank_id, versions, operator)
        version, new_id = new.version, new.key_id
        wrapped_by = f"wrapped by {self._keys.root.description}"
        rewraps: list[Rewrap] = []
        events = [self._event(KeyEventKind.ROTATED, new, operator, wrapped_by)]
        for child in versions:
            if child.purpose is KeyPurpose.BANK or child.state in (
                KeyState.RETIRED,
                KeyState.DESTROYED,
            ):
                continue
            assert child.parent_version is not None
            parent_suite, parent_key = old_keys[child.parent_version]
            raw = open_child(parent_key, parent_suite, child.wrapped, child.key_id)
            sealed = seal_child(new_key, suite, raw, child.key_id)
            rewraps.append(Rewrap(bank_id, child.purpose, child.version, sealed, version))
            events.append(
                self._event(KeyEventKind.REWRAPPED, child, operator, f"sealed by {new_id}")
            )
        # A compromised one keeps its state (its incident is on record); nothing is under it.
        states = tuple(
            StateChange(bank_id, KeyPurpose.BANK, v.version, KeyState.RETIRED) for v in active
        )
        events += [self._event(KeyEventKind.RETIRED, v, operator, "replaced") for v in active]
        change = KeyChange(new=(new,), rewraps=tuple(rewraps), states=states, events=tuple(events))
        return change, new

    def _event(
        self, kind: KeyEventKind, key: KeyVersion, operator: str, detail: str = ""
    ) -> KeyEvent:
        return KeyEvent(
            kind, key.key_id, key.bank_id, key.purpose, key.version, key.suite,
            self._clock.now(), operator, detail,
        )  # fmt: skip


def _current(versions: Sequence[KeyVersion], purpose: KeyPurpose) -> KeyVersion:
    active = [v for v in versions if v.purpose is purpose and v.state is KeyState.ACTIVE]
    return max(active, key=lambda v: v.version)


def _refuse_destroyed(target: KeyVersion) -> None:
    """A destroyed version is gone (its material erased): it cannot change state again, and
    a row that claimed to hold it would break every replica's key loading."""
    if target.state is KeyState.DESTROYED:
        raise PreconditionFailed(
            f"{target.key_id} is destroyed: nothing is left to retire or to declare",
            reason=ErrorReason.KEY_IN_USE,
            metadata={"key_id": target.key_id},
        )


def _find(versions: Sequence[KeyVersion], purpose: KeyPurpose, version: int) -> KeyVersion:
    for v in versions:
        if v.purpose is purpose and v.version == version:
            return v
    raise InvalidRequest(
        [FieldViolation("version", f"no {purpose.value} key of this version", "UNKNOWN_KEY")]
    )
