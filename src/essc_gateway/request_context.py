"""Facts learned while serving one request, for the records kept about it afterwards."""

from __future__ import annotations

from contextvars import ContextVar

# Keyed lookup token of the holder a request turned out to be about (from an auth token or a
# card lookup), so that its liability record can be found by a complaint (A15). Never the ID.
request_holder_token: ContextVar[str | None] = ContextVar("request_holder_token", default=None)
