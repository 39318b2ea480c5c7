"""A token bucket kept in the store, shared by every replica: refill by elapsed time, take."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from essc_gateway.store.cluster import RateGrant


def refill_and_take(
    tokens: float,
    updated_at: datetime,
    wanted: int,
    now: datetime,
    per_second: float,
    burst: float,
) -> tuple[float, RateGrant, datetime]:
    """(tokens left, the grant, the bucket's new time). Replicas' clocks differ a little: a
    `now` behind the bucket's time refills nothing and does not move it back."""
    moment = max(now, updated_at)
    elapsed = (moment - updated_at).total_seconds()
    tokens = min(burst, tokens + elapsed * per_second)
    granted = min(wanted, math.floor(tokens))
    tokens -= granted
    wait = timedelta(0) if granted else timedelta(seconds=(1 - tokens) / per_second)
    return tokens, RateGrant(granted, wait), moment
