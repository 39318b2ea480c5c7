"""Which bank is calling: the mTLS client certificate in production, a bearer token in
development. Each bank acts only for its own customers."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence

from essc_gateway.crypto import token_digest
from essc_gateway.errors import ErrorReason, Unauthenticated

__all__ = ["BankAuthenticator", "token_digest"]

_BEARER = "bearer "


class BankAuthenticator:
    """Maps a call's credentials to a bank id, or raises Unauthenticated."""

    def __init__(
        self,
        *,
        token_digests: Mapping[str, str] | None = None,
        certificate_subjects: Mapping[str, str] | None = None,
    ) -> None:
        """Args:
        token_digests: SHA-256 hex digest of a development token -> bank id.
        certificate_subjects: client certificate common name -> bank id (mTLS).
        """
        self._tokens = dict(token_digests or {})
        self._subjects = dict(certificate_subjects or {})

    def identify(
        self,
        metadata: Sequence[tuple[str, str | bytes]],
        auth_context: Mapping[str, Iterable[bytes]],
    ) -> str:
        if self._subjects:
            names = auth_context.get("x509_common_name", ())
            for name in names:
                bank = self._subjects.get(name.decode(errors="replace"))
                if bank is not None:
                    return bank
        if self._tokens:
            headers = [value for key, value in metadata if key == "authorization"]
            if len(headers) > 1:  # which one would be meant? refuse rather than pick one
                raise Unauthenticated(
                    "more than one authorization header", reason=ErrorReason.BANK_UNAUTHENTICATED
                )
            for value in headers:
                if not isinstance(value, str):
                    continue
                if value[: len(_BEARER)].lower() != _BEARER:
                    continue
                digest = token_digest(value[len(_BEARER) :].strip())
                for known, bank in self._tokens.items():
                    if hmac.compare_digest(known, digest):
                        return bank
        raise Unauthenticated(
            "the calling bank could not be identified", reason=ErrorReason.BANK_UNAUTHENTICATED
        )
