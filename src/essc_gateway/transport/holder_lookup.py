"""Which holder a failed request was about, from what it carries: a complaint (A15) must find
every failed request of the holder, those refused before any service ran included (a window,
shedding, a bad token)."""

from __future__ import annotations

from essc_gateway.service.tokens import TokenService
from essc_gateway.service.vault import Vault
from essc_gateway.transport.requests import auth_token_of, holder_id_of


class HolderLookup:
    def __init__(self, vault: Vault, tokens: TokenService) -> None:
        self._vault = vault
        self._tokens = tokens

    def __call__(self, request: object, bank_id: str) -> str | None:
        """The holder's lookup token (never the ID number), if the request names a holder."""
        holder_id = holder_id_of(request)
        if holder_id is not None:
            return self._vault.holder_token(bank_id, holder_id)
        token = auth_token_of(request)
        return None if token is None else self._tokens.holder_of_auth(token, bank_id)
