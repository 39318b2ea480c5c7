"""Operator roles and the OperatorService methods each admits (A13(1): only authorised staff
read personal data). The proto comments state the same table; a test keeps them equal."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class OperatorRole(StrEnum):
    OPERATOR = "operator"
    """Runs the service: maintenance windows, circuits, incidents."""
    AUDITOR = "auditor"
    """Reads reports, the ledger and its proofs, the access log; changes nothing."""
    PRIVACY_OFFICER = "privacy_officer"
    """Erases holders' data and discloses it on a ground (A13(2), A14)."""
    KEY_CUSTODIAN = "key_custodian"
    """Manages the key hierarchy (K1-K7)."""


_O, _A, _P, _K = (
    OperatorRole.OPERATOR,
    OperatorRole.AUDITOR,
    OperatorRole.PRIVACY_OFFICER,
    OperatorRole.KEY_CUSTODIAN,
)

METHOD_ROLES: Mapping[str, frozenset[OperatorRole]] = {
    "AnnounceMaintenance": frozenset({_O}),
    "AmendMaintenance": frozenset({_O}),
    "CancelMaintenance": frozenset({_O}),
    "ListMaintenance": frozenset({_O, _A}),
    "ForceCircuitOpen": frozenset({_O}),
    "ReleaseCircuit": frozenset({_O}),
    "ListCircuits": frozenset({_O, _A}),
    "ListReplicas": frozenset({_O, _A}),
    "DeclareIncident": frozenset({_O}),
    "ListIncidents": frozenset({_O, _A}),
    "GetLiabilityReport": frozenset({_A}),
    "GetMonthlyStatement": frozenset({_A}),
    "VerifyLedger": frozenset({_A}),
    "GetCheckpoint": frozenset({_A}),
    "GetInclusionProof": frozenset({_A}),
    "GetConsistencyProof": frozenset({_A}),
    "GetEvidenceBundle": frozenset({_A}),
    "ListAccessLog": frozenset({_A}),
    "GetKeyStatus": frozenset({_K, _A}),
    "RotateKey": frozenset({_K}),
    "RetireKey": frozenset({_K}),
    "DeclareKeyCompromised": frozenset({_K}),
    "RequestKeyAction": frozenset({_K}),
    "ApproveKeyAction": frozenset({_K}),
    "EraseHolder": frozenset({_P}),
    "DiscloseHolder": frozenset({_P}),
    "ListDisclosures": frozenset({_P, _A}),
    "EraseBank": frozenset({_P}),
    "ListErasureJobs": frozenset({_P, _A}),
}
"""Every OperatorService method: the roles that may call it. A method missing here is
refused to everyone."""


def admits(method: str, roles: frozenset[OperatorRole]) -> bool:
    return not METHOD_ROLES.get(method, frozenset()).isdisjoint(roles)
