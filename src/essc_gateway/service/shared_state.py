"""Keeps this replica's in-memory copies of what the cluster shares (maintenance windows,
incidents, forced circuits, open outages) current: a change made through any replica is
reloaded here within a second. The store counts every change per topic; this polls the
counts (one small read) and, on PostgreSQL, also wakes at once on the change's NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from essc_gateway.store.cluster import ClusterStore, SharedTopic

log = logging.getLogger("essc_gateway.shared_state")
Reload = Callable[[], Awaitable[None]]


class SharedState:
    def __init__(self, store: ClusterStore, reloads: Mapping[SharedTopic, Reload]) -> None:
        self._store = store
        self._reloads = reloads
        self._seen: dict[SharedTopic, int] = {}
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Loads everything once (after reading the counts, so no change slips between)
        and starts listening for notifications."""
        versions = await self._store.state_versions()
        for topic, reload in self._reloads.items():
            await reload()
            self._seen[topic] = versions.get(topic, 0)
        await self._store.listen(self.heard)

    def heard(self, topic: SharedTopic) -> None:
        """A replica changed `topic` (a notification): refresh now rather than at the poll."""
        self._wake.set()

    async def refresh(self) -> None:
        """Reloads the topics that changed since the last look."""
        versions = await self._store.state_versions()
        for topic, reload in self._reloads.items():
            version = versions.get(topic, 0)
            if version != self._seen.get(topic):
                await reload()
                self._seen[topic] = version

    async def run(self, interval: float) -> None:
        """Refreshes every `interval` seconds, or at once when notified, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as unexpected:  # the next round tries again; keep serving
                log.error("shared state not refreshed: %s", type(unexpected).__name__)
