"""essc-gateway: asyncio gRPC gateway between banks and the national e-SSC platform."""

from __future__ import annotations

__version__ = "0.1.0"
