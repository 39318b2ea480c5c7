"""Group commit for a database with many connections: writes of one kind that arrive while
earlier ones are in flight are sent together, as one statement over arrays (one round trip
and one commit for the lot), on up to `lanes` connections at once. Each caller still waits
for its own write's commit, and a caller cancelled meanwhile cancels only its wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
RunBatch = Callable[[list[T]], Awaitable[list[R | BaseException]]]


class Coalescer(Generic[T, R]):
    def __init__(self, run_batch: RunBatch[T, R], lanes: int, max_batch: int) -> None:
        """`run_batch`: the results of a batch in its items' order, an exception for an item
        that failed alone (the whole batch fails with the exception it raises)."""
        self._run_batch = run_batch
        self._lanes = asyncio.Semaphore(lanes)
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = False

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._ensure_drainer()
        return await asyncio.shield(future)

    def _ensure_drainer(self) -> None:
        """Whenever items are queued, one drainer waits for a lane to take them."""
        if self._queue and not self._waiting:
            self._waiting = True
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        async with self._lanes:  # while every lane is busy, the queue grows into a batch
            self._waiting = False
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._ensure_drainer()  # what did not fit waits for the next lane
            if not batch:  # another drainer took them
                return
            try:
                results = await self._run_batch([item for item, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):  # this item's own failure
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
