"""Test certificates: the development PKI of the package."""

from essc_gateway.dev_pki import Pem, make_pki

__all__ = ["Pem", "make_pki"]
