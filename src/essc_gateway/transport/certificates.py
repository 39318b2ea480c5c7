"""Facts about the gateway's own certificates that operators watch (their expiry)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509


def certificate_expiry(path: Path) -> datetime:
    """When the first certificate of the PEM file at `path` stops being valid (UTC)."""
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
