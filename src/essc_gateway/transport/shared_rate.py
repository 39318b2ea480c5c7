"""A bank's rate limit for the whole cluster: one token bucket per bank in the store, which
every replica draws from in small batches. A replica spends its batch locally (no I/O on the
request path) and asks for the next one when it runs out, so the cluster admits the
configured rate whatever the number of replicas and however the balancer spreads the load.

Unspent tokens lapse after `HOLD` (a replica must not sit on the cluster's capacity). After
a refusal, the replica refuses locally for the wait the store named (at least one batch's
worth of time), so an overloaded cluster asks the store a few times a second, not per
request. While the store cannot be reached, each replica falls back to a local bucket at the
configured rate (the cluster then admits up to N times it), asking the store again after a
second: requests are neither refused nor held because the store is away.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from essc_gateway.clock import Clock
from essc_gateway.errors import ErrorReason, ResourceExhausted
from essc_gateway.store.base import StoreUnavailable
from essc_gateway.store.cluster import ClusterStore, RateGrant
from essc_gateway.transport.admission import RateLimit, TokenBucket

log = logging.getLogger("essc_gateway.admission")
BATCH_TIME = 0.05
"""A batch is this many seconds of the bank's rate (at least one token)."""
HOLD = 0.25
"""Seconds a replica may keep tokens it took before they lapse."""
STORE_AWAY_BACKOFF = 1.0
"""After the store failed to answer, seconds of the local bucket before asking it again."""


class SharedRateLimit:
    def __init__(self, bank_id: str, limit: RateLimit, store: ClusterStore, clock: Clock) -> None:
        self._bank_id = bank_id
        self._limit = limit
        self._store = store
        self._clock = clock
        self._batch = max(1, min(int(limit.burst), round(limit.per_second * BATCH_TIME)))
        self._tokens = 0
        self._lapse_at = 0.0
        self._refused_until = 0.0
        self._asking: asyncio.Task[RateGrant] | None = None
        self._fallback = TokenBucket(limit, clock)
        self._store_away_until = 0.0

    async def admit(self) -> None:
        """Takes one token, or raises ResourceExhausted (RATE_LIMITED) with the wait."""
        while True:
            now = self._clock.monotonic()
            if self._tokens > 0 and now < self._lapse_at:
                self._tokens -= 1
                return
            if now < self._refused_until:
                raise _limited(self._refused_until - now)
            if now < self._store_away_until:  # not asked again for each request meanwhile
                self._take_locally()
                return
            try:
                grant = await self._ask()
            except StoreUnavailable:
                self._store_away_until = self._clock.monotonic() + STORE_AWAY_BACKOFF
                self._take_locally()
                return

            now = self._clock.monotonic()
            if grant.granted == 0:
                wait = max(grant.wait.total_seconds(), self._batch / self._limit.per_second)
                self._refused_until = now + wait
                raise _limited(wait)

    def _take_locally(self) -> None:
        wait = self._fallback.try_take()
        if wait > 0:
            raise _limited(wait)

    async def _ask(self) -> RateGrant:
        """One request to the store at a time; concurrent requests wait for its answer."""
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._take_batch())
            self._asking.add_done_callback(self._asked)
        return await asyncio.shield(self._asking)

    async def _take_batch(self) -> RateGrant:
        grant = await self._store.take_rate_tokens(
            self._bank_id,
            self._batch,
            self._clock.now(),
            self._limit.per_second,
            self._limit.burst,
        )
        if grant.granted:
            now = self._clock.monotonic()
            held = self._tokens if now < self._lapse_at else 0  # lapsed ones are gone
            self._tokens = held + grant.granted
            self._lapse_at = now + HOLD
        return grant

    def _asked(self, task: asyncio.Task[RateGrant]) -> None:
        self._asking = None
        if not task.cancelled() and isinstance(task.exception(), StoreUnavailable):
            log.warning("rate limit of bank=%s held locally: the store is away", self._bank_id)


def _limited(wait: float) -> ResourceExhausted:
    return ResourceExhausted(
        "request rate limit of this bank exceeded",
        retry_after=timedelta(seconds=wait),
        reason=ErrorReason.RATE_LIMITED,
    )
