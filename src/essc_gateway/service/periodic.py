"""Background jobs that repeat until cancelled, surviving their own failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(interval: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Runs `job` every `interval` seconds until cancelled. A failure is logged (its type
    only: a message may quote personal data) and the next round runs as usual: what the
    job had not done stays in the store for it."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as unexpected:
            log.error("%s failed: %s", name, type(unexpected).__name__)
        await asyncio.sleep(interval)
