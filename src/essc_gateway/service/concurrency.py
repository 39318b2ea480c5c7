"""Fan-out to the platform: all calls at once, the first failure cancels the rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from essc_gateway.errors import GatewayError


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    # A gateway error says what happened upstream; anything else is a bug and wins.
    for leaf in leaves:
        if not isinstance(leaf, GatewayError):
            return leaf
    return leaves[0]


@asynccontextmanager
async def fan_out() -> AsyncIterator[asyncio.TaskGroup]:
    """A TaskGroup that raises the first failure itself instead of an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None
