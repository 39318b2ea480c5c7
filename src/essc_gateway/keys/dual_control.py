"""Dual control (K5): exporting a key (escrow, a handover to a third party) and destroying one
each need two different operators, one who asks and one who approves; both, and the outcome,
are key events of the evidence log.

- An export seals the key version's bytes to the recipient's RSA public key (RSA-OAEP with
  SHA-256, at least 2048 bits): the material leaves only in a form the recipient alone opens.
  The root key is never exported: it cannot leave the HSM.
- A destruction deletes a version's wrapped material for good: only a retired or compromised
  version that nothing depends on any more.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from essc_gateway.clock import Clock
from essc_gateway.errors import (
    ErrorReason,
    FieldViolation,
    InvalidRequest,
    PreconditionFailed,
)
from essc_gateway.keys.hierarchy import KeyHierarchy, open_child
from essc_gateway.keys.model import (
    KeyAction,
    KeyActionKind,
    KeyEvent,
    KeyEventKind,
    KeyPurpose,
    KeyState,
    KeyVersion,
)
from essc_gateway.keys.ports import KeyStore

MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class ApprovedAction:
    action: KeyAction
    exported: bytes
    """EXPORT: the key sealed to the recipient's public key; empty for DESTROY."""


class DualControl:
    def __init__(self, store: KeyStore, keys: KeyHierarchy, clock: Clock) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock

    async def request(
        self,
        kind: KeyActionKind,
        bank_id: str,
        purpose: KeyPurpose,
        version: int,
        recipient_public_key: str,
        operator: str,
    ) -> KeyAction:
        """Records the request; nothing happens until another operator approves it.

        Raises:
            InvalidRequest: no such key version, or a recipient key that is not RSA of at
                least 2048 bits (EXPORT).
            PreconditionFailed: KEY_IN_USE, destroying a version in use.
        """
        target = await self._version(bank_id, purpose, version)
        if kind is KeyActionKind.EXPORT:
            _recipient(recipient_public_key)
        else:
            await self._check_destroyable(target)
        action = KeyAction(
            action_id="ka_" + secrets.token_hex(8),
            kind=kind,
            bank_id=bank_id,
            purpose=purpose,
            version=version,
            recipient_public_key=recipient_public_key if kind is KeyActionKind.EXPORT else "",
            requested_by=operator,
            requested_at=self._clock.now(),
        )
        detail = f"{kind.value} asked, action {action.action_id}"
        await self._store.add_key_action(
            action, self._event(KeyEventKind.ACTION_REQUESTED, target, operator, detail)
        )
        return action

    async def approve(self, action_id: str, operator: str) -> ApprovedAction:
        """Carries out the action, approved by `operator`.

        Raises:
            InvalidRequest: no such action.
            PreconditionFailed: KEY_ACTION_NEEDS_SECOND_OPERATOR, the one who asked approving
                (or an action approved already); KEY_IN_USE, a destruction that is no longer
                possible.
        """
        action = await self._store.key_action(action_id)
        if action is None:
            raise InvalidRequest([FieldViolation("action_id", "no such action", "UNKNOWN_ACTION")])
        if action.approved_by is not None or action.requested_by == operator:
            raise PreconditionFailed(
                "a key action needs the approval of a second, different operator",
                reason=ErrorReason.KEY_ACTION_NEEDS_SECOND_OPERATOR,
                metadata={"action_id": action.action_id},
            )
        target = await self._version(action.bank_id, action.purpose, action.version)
        exported = b""
        if action.kind is KeyActionKind.EXPORT:
            raw = await self._material(target)
            exported = _recipient(action.recipient_public_key).encrypt(
                raw,
                padding.OAEP(
                    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
                ),
            )
            outcome = KeyEventKind.EXPORTED
        else:
            await self._check_destroyable(target)
            outcome = KeyEventKind.DESTROYED
        both = f"asked by {action.requested_by}, approved by {operator}"
        now = self._clock.now()
        await self._store.approve_key_action(
            action, operator, now, [self._event(outcome, target, operator, both)]
        )
        if action.kind is KeyActionKind.DESTROY:
            await self._keys.reload()
        approved = replace(action, approved_by=operator, approved_at=now)
        return ApprovedAction(approved, exported)

    async def _version(self, bank_id: str, purpose: KeyPurpose, version: int) -> KeyVersion:
        for v in await self._store.key_versions():
            if (v.bank_id, v.purpose, v.version) == (bank_id, purpose, version):
                return v
        raise InvalidRequest([FieldViolation("version", "no such key version", "UNKNOWN_KEY")])

    async def _check_destroyable(self, target: KeyVersion) -> None:
        remaining = await self._store.sealed_under(target.bank_id, target.purpose, target.version)
        if target.purpose is KeyPurpose.BANK:  # the keys it still seals would die with it
            remaining += sum(
                1
                for v in await self._store.key_versions()
                if v.bank_id == target.bank_id
                and v.purpose is not KeyPurpose.BANK
                and v.parent_version == target.version
                and v.state is not KeyState.DESTROYED
            )
        if target.state not in (KeyState.RETIRED, KeyState.COMPROMISED) or remaining:
            raise PreconditionFailed(
                f"{target.key_id} may be destroyed only retired or compromised, with nothing "
                "under it",
                reason=ErrorReason.KEY_IN_USE,
                metadata={"key_id": target.key_id, "remaining": str(remaining)},
            )

    async def _material(self, target: KeyVersion) -> bytes:
        if target.state is KeyState.DESTROYED:
            raise PreconditionFailed(
                f"{target.key_id} was destroyed", reason=ErrorReason.KEY_IN_USE
            )
        if target.purpose is KeyPurpose.BANK:
            return await self._keys.bank_key(target)
        for parent in await self._store.key_versions():
            if (
                parent.bank_id == target.bank_id
                and parent.purpose is KeyPurpose.BANK
                and parent.version == target.parent_version
            ):
                bank_key = await self._keys.bank_key(parent)
                return open_child(bank_key, parent.suite, target.wrapped, target.key_id)
        raise PreconditionFailed(
            f"{target.key_id}: its bank key is gone", reason=ErrorReason.KEY_IN_USE
        )

    def _event(self, kind: KeyEventKind, key: KeyVersion, operator: str, detail: str) -> KeyEvent:
        return KeyEvent(
            kind, key.key_id, key.bank_id, key.purpose, key.version, key.suite,
            self._clock.now(), operator, detail,
        )  # fmt: skip


def _recipient(pem: str) -> rsa.RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise InvalidRequest(
            [FieldViolation("recipient_public_key", "is not a PEM public key", "BAD_FORMAT")]
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise InvalidRequest(
            [
                FieldViolation(
                    "recipient_public_key",
                    f"must be an RSA key of at least {MIN_RSA_BITS} bits",
                    "WEAK_KEY",
                )
            ]
        )
    return key
