"""OperatorService's key management RPCs, protobuf <-> `KeyCustodian` (mixed into the
operator servicer). Every change names the calling operator in its key events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc

from essc.gateway.v1 import operator_pb2 as pb
from essc_gateway.errors import FieldViolation, InvalidRequest, KeystoreUnavailable
from essc_gateway.keys.custodian import KeyCustodian
from essc_gateway.keys.dual_control import DualControl
from essc_gateway.keys.model import (
    KeyAction,
    KeyActionKind,
    KeyJob,
    KeyPurpose,
    KeyState,
    KeyVersion,
)
from essc_gateway.keys.root import KeystoreError
from essc_gateway.transport.context import calling_operator
from essc_gateway.transport.responses import timestamp

Context = grpc.aio.ServicerContext[Any, Any]

_PURPOSES = {
    pb.KEY_PURPOSE_BANK: KeyPurpose.BANK,
    pb.KEY_PURPOSE_DATA: KeyPurpose.DATA,
    pb.KEY_PURPOSE_LOOKUP: KeyPurpose.LOOKUP,
    pb.KEY_PURPOSE_TOKENS: KeyPurpose.TOKENS,
}
_PURPOSE_PB = {purpose: value for value, purpose in _PURPOSES.items()}
_STATE_PB = {
    KeyState.ACTIVE: pb.KEY_STATE_ACTIVE,
    KeyState.RETIRED: pb.KEY_STATE_RETIRED,
    KeyState.COMPROMISED: pb.KEY_STATE_COMPROMISED,
    KeyState.DESTROYED: pb.KEY_STATE_DESTROYED,
}
_ACTION_KINDS = {
    pb.KEY_ACTION_KIND_EXPORT: KeyActionKind.EXPORT,
    pb.KEY_ACTION_KIND_DESTROY: KeyActionKind.DESTROY,
}
_ACTION_KIND_PB = {kind: value for value, kind in _ACTION_KINDS.items()}


def key_pb(key: KeyVersion) -> pb.KeyVersion:
    return pb.KeyVersion(
        key_id=key.key_id,
        bank_id=key.bank_id,
        purpose=_PURPOSE_PB[key.purpose],
        version=key.version,
        suite=key.suite.name,
        state=_STATE_PB[key.state],
        created_at=timestamp(key.created_at),
        created_by=key.created_by,
    )


def job_pb(job: KeyJob) -> pb.KeyJob:
    return pb.KeyJob(
        job_id=job.job_id,
        bank_id=job.bank_id,
        target_version=job.target_version,
        rekey=job.rekey,
        done=job.done,
        total=job.total,
        started_at=timestamp(job.started_at),
        finished_at=timestamp(job.finished_at) if job.finished_at else None,
    )


def action_pb(action: KeyAction) -> pb.KeyAction:
    return pb.KeyAction(
        action_id=action.action_id,
        kind=_ACTION_KIND_PB[action.kind],
        key_id=action.key_id,
        requested_by=action.requested_by,
        requested_at=timestamp(action.requested_at),
        approved_by=action.approved_by or "",
        approved_at=timestamp(action.approved_at) if action.approved_at else None,
    )


def _purpose(value: int) -> KeyPurpose:
    purpose: KeyPurpose | None = _PURPOSES.get(value)  # type: ignore[call-overload]
    if purpose is None:
        raise InvalidRequest([FieldViolation("purpose", "must name a key purpose", "UNSPECIFIED")])
    return purpose


def _version(value: int) -> int:
    if value < 1:
        raise InvalidRequest([FieldViolation("version", "must be at least 1", "OUT_OF_RANGE")])
    return value


@contextlib.contextmanager
def _keystore() -> Iterator[None]:
    """A change that needs the root keystore while it does not answer: UNAVAILABLE."""
    try:
        yield
    except KeystoreError as error:
        raise KeystoreUnavailable(str(error)) from None


class KeyRpcs:
    def __init__(self, custodian: KeyCustodian, dual_control: DualControl) -> None:
        self._custodian = custodian
        self._dual_control = dual_control

    async def GetKeyStatus(
        self, request: pb.GetKeyStatusRequest, context: Context
    ) -> pb.GetKeyStatusResponse:
        keys = await self._custodian.status()
        jobs = await self._custodian.jobs()
        return pb.GetKeyStatusResponse(
            keys=[key_pb(k) for k in keys], jobs=[job_pb(j) for j in jobs]
        )

    async def RotateKey(
        self, request: pb.RotateKeyRequest, context: Context
    ) -> pb.RotateKeyResponse:
        purpose = _purpose(request.purpose)
        with _keystore():
            key = await self._custodian.rotate(request.bank_id, purpose, calling_operator())
        return pb.RotateKeyResponse(key=key_pb(key))

    async def RetireKey(
        self, request: pb.RetireKeyRequest, context: Context
    ) -> pb.RetireKeyResponse:
        purpose, version = _purpose(request.purpose), _version(request.version)
        with _keystore():
            await self._custodian.retire(request.bank_id, purpose, version, calling_operator())
        return pb.RetireKeyResponse()

    async def DeclareKeyCompromised(
        self, request: pb.DeclareKeyCompromisedRequest, context: Context
    ) -> pb.DeclareKeyCompromisedResponse:
        purpose, version = _purpose(request.purpose), _version(request.version)
        with _keystore():
            report = await self._custodian.declare_compromised(
                request.bank_id, purpose, version, calling_operator(), request.reason
            )
        return pb.DeclareKeyCompromisedResponse(
            compromised=[key_pb(k) for k in report.compromised],
            replacements=[key_pb(k) for k in report.replacements],
            reencryption=job_pb(report.reencryption) if report.reencryption else None,
            declared_at=timestamp(report.declared_at),
        )

    async def RequestKeyAction(
        self, request: pb.RequestKeyActionRequest, context: Context
    ) -> pb.RequestKeyActionResponse:
        kind: KeyActionKind | None = _ACTION_KINDS.get(request.kind)
        if kind is None:
            raise InvalidRequest([FieldViolation("kind", "must name an action", "UNSPECIFIED")])
        action = await self._dual_control.request(
            kind,
            request.bank_id,
            _purpose(request.purpose),
            _version(request.version),
            request.recipient_public_key,
            calling_operator(),
        )
        return pb.RequestKeyActionResponse(action=action_pb(action))

    async def ApproveKeyAction(
        self, request: pb.ApproveKeyActionRequest, context: Context
    ) -> pb.ApproveKeyActionResponse:
        if not request.action_id:
            raise InvalidRequest([FieldViolation("action_id", "is required", "REQUIRED")])
        with _keystore():
            approved = await self._dual_control.approve(request.action_id, calling_operator())
        return pb.ApproveKeyActionResponse(
            action=action_pb(approved.action), exported_key=approved.exported
        )
