"""The national platform, seen through the `Platform` port."""

from essc_gateway.upstream.port import (
    NameCheck,
    PasswordChange,
    PasswordCheck,
    Platform,
    PlatformCard,
    PlatformIssue,
    SmsCheck,
)

__all__ = [
    "NameCheck",
    "PasswordChange",
    "PasswordCheck",
    "Platform",
    "PlatformCard",
    "PlatformIssue",
    "SmsCheck",
]
