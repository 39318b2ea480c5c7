"""What a card in each state still allows (A6, A12), checked by every holder-bound operation
against the platform's view of the card, which is the authority."""

from __future__ import annotations

from essc_gateway.domain.models import CardStatus, Scenario
from essc_gateway.errors import ErrorReason, PreconditionFailed

# While the physical card is lost and continued use is not authorised, only these remain (A6).
ALLOWED_WHILE_SUSPENDED = frozenset({Scenario.VIEW_CARD, Scenario.CARD_LOSS})


def require_usable(status: CardStatus, scenario: Scenario) -> None:
    """Raises PreconditionFailed when a card in `status` may not be used for `scenario`."""
    if status is CardStatus.TERMINATED:
        raise PreconditionFailed(
            "the e-SSC has been terminated", reason=ErrorReason.CARD_TERMINATED
        )
    if status is CardStatus.SUSPENDED and scenario not in ALLOWED_WHILE_SUSPENDED:
        raise PreconditionFailed(
            "the physical card is reported lost; the holder must authorise continued "
            "use (CARD_LOSS) first (A6)",
            reason=ErrorReason.CARD_SUSPENDED,
        )
