"""Where the store lives, from one setting (`ESSC_DATABASE`): a SQLite file (a path, or
`sqlite:///path`) or a PostgreSQL server (`postgresql://...`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class PostgresDatabase:
    dsn: str
    """An asyncpg DSN; query parameters it does not know become server settings (e.g.
    `?search_path=tenant`)."""

    def __post_init__(self) -> None:
        if not self.dsn.startswith(_POSTGRES_SCHEMES):
            raise ValueError("a PostgreSQL DSN starts with postgresql://")

    def __str__(self) -> str:
        """The DSN without its password: safe to print and log."""
        parts = urlsplit(self.dsn)
        if parts.password is None:
            return self.dsn
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    def __repr__(self) -> str:
        return f"PostgresDatabase({self!s})"


StoreLocation = Path | PostgresDatabase


def parse_store_location(text: str) -> StoreLocation:
    if text.startswith(_POSTGRES_SCHEMES):
        return PostgresDatabase(text)
    if text.startswith("sqlite:///"):
        return Path(text.removeprefix("sqlite:///"))  # sqlite:////abs/path keeps its /
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise ValueError("unknown database URL: use a path, sqlite:///path or postgresql://...")
    return Path(text)
