"""Which bank is calling: the mTLS client certificate in production, a bearer token in
development. Each bank acts only for its own customers.

Behind a proxy that terminates TLS (nginx), the gateway sees no certificate: the proxy
verifies it and passes the client's common name in a header. That header is believed only
from the configured proxy addresses; from anyone else it is refused, never ignored (a
caller that sends it is trying to be someone)."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from essc_gateway.crypto import token_digest
from essc_gateway.errors import ErrorReason, Unauthenticated

__all__ = ["BankAuthenticator", "TrustedProxy", "token_digest"]

_BEARER = "bearer "
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxy:
    """A TLS-terminating proxy whose verified client identity the gateway believes."""

    networks: tuple[Network, ...]
    identity_header: str = "x-essc-client-cn"
    """Lower case (gRPC metadata keys are): the client certificate's common name."""

    def trusts(self, peer: str) -> bool:
        """Whether `peer` (gRPC's "ipv4:1.2.3.4:5678" / "ipv6:%5B::1%5D:5678", the brackets
        percent-encoded) is a proxy."""
        kind, _, rest = unquote(peer).partition(":")
        if kind == "ipv4":
            host = rest.rsplit(":", 1)[0]
        elif kind == "ipv6":
            host = rest.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]  # no zone index
        else:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack listener sees IPv4 peers so
        return any(address in network for network in self.networks)


class Caller(Protocol):
    """What identifies a call (a gRPC servicer context has both)."""

    def auth_context(self) -> Mapping[str, Iterable[bytes]]: ...

    def peer(self) -> str: ...


class BankAuthenticator:
    """Maps a call's credentials to a bank id, or raises Unauthenticated."""

    def __init__(
        self,
        *,
        token_digests: Mapping[str, str] | None = None,
        certificate_subjects: Mapping[str, str] | None = None,
        proxy: TrustedProxy | None = None,
        identity_header: str = "x-essc-client-cn",
    ) -> None:
        """Args:
        token_digests: SHA-256 hex digest of a development token -> bank id.
        certificate_subjects: client certificate common name -> bank id (mTLS).
        proxy: the TLS-terminating proxy whose identity header is believed, if any.
        identity_header: refused from anyone but `proxy` (also when none is configured).
        """
        self._tokens = dict(token_digests or {})
        self._subjects = dict(certificate_subjects or {})
        self._proxy = proxy
        self._identity_header = proxy.identity_header if proxy else identity_header

    def identify(self, metadata: Sequence[tuple[str, str | bytes]], caller: Caller) -> str:
        claimed = [value for key, value in metadata if key == self._identity_header]
        if claimed:
            return self._from_proxy(claimed, caller.peer())
        auth_context = caller.auth_context()
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

    def _from_proxy(self, claimed: list[str | bytes], peer: str) -> str:
        if self._proxy is None or not self._proxy.trusts(peer):
            raise Unauthenticated(
                "a client identity header is accepted only from the trusted proxy",
                reason=ErrorReason.UNTRUSTED_IDENTITY_HEADER,
            )
        if len(claimed) == 1 and isinstance(claimed[0], str):
            bank = self._subjects.get(claimed[0])
            if bank is not None:
                return bank
        raise Unauthenticated(
            "the calling bank could not be identified", reason=ErrorReason.BANK_UNAUTHENTICATED
        )
