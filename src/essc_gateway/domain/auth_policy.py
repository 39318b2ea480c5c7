"""Which factors each business scenario requires (A8), with per-bank overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from essc_gateway.domain.models import Factor, Scenario

_P, _S, _B = Factor.PASSWORD, Factor.SMS_CODE, Factor.BIOMETRIC

DEFAULT_REQUIREMENTS: Mapping[Scenario, frozenset[Factor]] = MappingProxyType(
    {
        Scenario.VIEW_CARD: frozenset({_P}),
        Scenario.QUERY_RECORDS: frozenset({_P}),
        Scenario.MEDICAL_SETTLEMENT: frozenset({_P, _B}),
        Scenario.PAYMENT: frozenset({_P, _S}),
        Scenario.CARD_LOSS: frozenset({_P, _S}),
        Scenario.UNBIND: frozenset({_P, _S, _B}),
    }
)


@dataclass(frozen=True)
class AuthPolicy:
    """Scenario -> required factors, defaults overridden per bank."""

    defaults: Mapping[Scenario, frozenset[Factor]] = field(
        default_factory=lambda: DEFAULT_REQUIREMENTS
    )
    per_bank: Mapping[str, Mapping[Scenario, frozenset[Factor]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(Scenario) - set(self.defaults)
        if missing:
            raise ValueError(f"no default factors for scenarios: {sorted(missing)}")
        for bank, overrides in [("defaults", self.defaults), *self.per_bank.items()]:
            for scenario, factors in overrides.items():
                # K3: only a password check tells whether the initial password is still in
                # use, and a holder who has not changed it must be stopped at every login.
                if Factor.PASSWORD not in factors:
                    raise ValueError(f"{bank}: scenario {scenario} must require PASSWORD (K3)")

    def required(self, bank_id: str, scenario: Scenario) -> frozenset[Factor]:
        overrides = self.per_bank.get(bank_id, {})
        return overrides.get(scenario, self.defaults[scenario])
