"""The gateway's certificates, reloaded from their files without a restart, and their expiry
(which operators watch).

A rotation tool (cert-manager, a projected Secret, an operator's `mv`) replaces the files; the
next TLS handshake, or the next look of the platform channel's watcher, picks up the new pair.
A pair that cannot be used (half written, the key not matching the certificate) is refused with
a warning and the previous pair keeps serving: a bad rotation never takes the gateway down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

log = logging.getLogger(__name__)

FileSignature = tuple[tuple[int, int, int, int], ...]


def certificate_expiry(path: Path) -> datetime:
    """When the first certificate of the PEM file at `path` stops being valid (UTC)."""
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def file_signature(paths: Sequence[Path]) -> FileSignature:
    """What changes when any of the files is replaced or rewritten (inode, size, mtime,
    ctime: a copy that keeps the mtime still changes the ctime); a file that cannot be read
    has (-1, -1, -1, -1), so that its return counts as a change."""

    def one(path: Path) -> tuple[int, int, int, int]:
        try:
            stat = os.stat(path)
        except OSError:
            return (-1, -1, -1, -1)
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    return tuple(one(path) for path in paths)


class CertificateError(Exception):
    """A certificate pair that cannot be used: the message names the file, never its content."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain and its private key (PEM), checked to belong together."""

    certificate_chain: bytes
    private_key: bytes
    expiry: datetime

    @classmethod
    def read(cls, cert_file: Path, key_file: Path) -> KeyPair:
        try:
            chain, key = cert_file.read_bytes(), key_file.read_bytes()
        except OSError as error:
            raise CertificateError(f"cannot read {error.filename}") from None
        try:
            certificate = x509.load_pem_x509_certificate(chain)
        except ValueError:
            raise CertificateError(f"{cert_file} holds no PEM certificate") from None
        try:
            private_key = load_pem_private_key(key, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise CertificateError(f"{key_file} holds no unencrypted PEM private key") from None
        spki = Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        if certificate.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(
            *spki
        ):
            raise CertificateError(f"{key_file} is not the key of {cert_file}")
        return cls(chain, key, certificate.not_valid_after_utc)


def read_ca(path: Path) -> bytes:
    try:
        roots = path.read_bytes()
    except OSError:
        raise CertificateError(f"cannot read {path}") from None
    try:
        x509.load_pem_x509_certificates(roots)
    except ValueError:
        raise CertificateError(f"{path} holds no PEM certificate") from None
    return roots


class ServerCertificates:
    """The bank-facing port's certificate, key and client CA, read again when they change.

    gRPC asks `_fetch` at each new connection's handshake (from one of its own threads); a
    stat of three files is all it costs when nothing changed.
    """

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path) -> None:
        self._files = (cert_file, key_file, client_ca_file)
        self._signature = file_signature(self._files)
        self._pair, self._roots = self._read()
        self.reloads = 0

    @property
    def expiry(self) -> datetime:
        return self._pair.expiry

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            # None means "unchanged" to grpc; types-grpcio types the fetcher without it.
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=True,
        )

    def _read(self) -> tuple[KeyPair, bytes]:
        cert_file, key_file, ca_file = self._files
        return KeyPair.read(cert_file, key_file), read_ca(ca_file)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self._pair.private_key, self._pair.certificate_chain)],
            root_certificates=self._roots,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        signature = file_signature(self._files)
        if signature == self._signature:
            return None
        # Remembered even when refused: the same broken files are not read (and logged)
        # at every handshake; the fix is another change.
        self._signature = signature
        try:
            self._pair, self._roots = self._read()
        except CertificateError as error:
            log.warning("TLS certificate not reloaded, the previous one serves on: %s", error)
            return None
        self.reloads += 1
        log.info("TLS certificate reloaded; it expires %s", self._pair.expiry.isoformat())
        return self._configuration()
