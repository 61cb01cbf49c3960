"""Group commit: many concurrent callers, one transaction.

A sweep removes many grants at once, each in its own task (so Discord's rate limit, not the
database, sets the pace). Each task still claims its grant right before its removal and
commits the outcome right after it, but the tasks that are waiting at the same moment share
one transaction: while one batch is being written, the next one gathers. On SQLite (one
writer) that turns hundreds of small transactions into a few large ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batched(Generic[K, V]):
    """``await batched(key)`` → ``run([key, …])[key]``, with concurrent keys sharing one ``run``.

    ``run`` returns a value for each key it was given (a missing key gets ``default``); if it
    raises, every caller of that batch gets the error.
    """

    def __init__(self, run: Callable[[list[K]], Awaitable[Mapping[K, V]]], default: V) -> None:
        self._run = run
        self._default = default
        self._waiting: list[tuple[K, asyncio.Future[V]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # let the tasks that are ready this moment join the batch
            batch, self._waiting = self._waiting, []
            try:
                found = await self._run(list(dict.fromkeys(key for key, _ in batch)))
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutting down): so are its callers
                for _, future in batch + self._waiting:
                    future.cancel()
                raise
            for key, future in batch:
                if not future.done():
                    future.set_result(found.get(key, self._default))
