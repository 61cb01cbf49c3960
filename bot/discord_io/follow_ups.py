"""Answer first, then follow up: the Discord work that comes after a person has their answer.

What a person waits for is the answer to their command or click. It waits only for what it
promises: the decision, committed (and a grant it announces, applied). Telling everyone else —
posting or refreshing the approval card, DMing the holder — follows from a decision that is
already durable, so it need not hold the answer back.

A handler runs inside :meth:`FollowUps.answering`. While it runs, every notifier method marked
:func:`after_answer` that its services call is kept instead of run; when the handler is done (it
has answered, or the one error path has), the kept work starts as one task, in the order it was
asked for. Outside a handler (sweeps, the audit worker) the same methods run at once, as before.

The bot keeps every task it started: a failure is logged by the one error path with what failed,
never lost; closing the bot waits for them; :meth:`FollowUps.settled` waits for one interaction's
work (the sandbox uses it, so a test reads the card after its click returns). A card whose post
fails or never happens (the process died after answering) is posted by the lost-card sweep
(``PendingSweeps.post_lost_cards``), as when the process died right after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, ParamSpec

import discord

from bot.discord_io.replies import answer_error, follow_up_failed

log = logging.getLogger(__name__)

P = ParamSpec("P")
Work = Callable[[], Awaitable[None]]

#: How long closing the bot waits for follow-up work still running before it cuts it short.
DRAIN_SECONDS = 10.0


class _Kept:
    """The follow-up work one handler asked for, kept until the handler is done."""

    def __init__(self) -> None:
        self.work: list[tuple[str, Work]] = []
        self.open = True


_kept: ContextVar[_Kept | None] = ContextVar("warden_follow_ups", default=None)


def after_answer(method: Callable[P, Awaitable[None]]) -> Callable[P, Coroutine[Any, Any, None]]:
    """Mark a notifier method as follow-up work: inside a handler it runs once the handler has
    answered; anywhere else it runs at once."""
    what = method.__name__

    @functools.wraps(method)
    async def followed(*args: P.args, **kwargs: P.kwargs) -> None:
        kept = _kept.get()
        if kept is None or not kept.open:
            await method(*args, **kwargs)
            return
        kept.work.append((what, functools.partial(method, *args, **kwargs)))

    return followed


class FollowUps:
    """The follow-up tasks the bot started, by the interaction they follow."""

    def __init__(self, *, answer_first: bool = True, drain_seconds: float = DRAIN_SECONDS) -> None:
        # Off: the follow-up work runs where it is asked for, before the answer (``Tuning.answer_first``).
        self.answer_first = answer_first
        self.drain_seconds = drain_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        # Interaction id → its handler (while it runs) and the follow-up task it started.
        self._busy: dict[int, set[asyncio.Future[None]]] = {}

    @contextlib.asynccontextmanager
    async def answering(self, interaction: discord.Interaction[Any]) -> AsyncIterator[None]:
        """Run a handler: anything it raises is answered by the one error path
        (``answer_error``), and the follow-up work it asked for starts once it is done."""
        kept = _Kept()
        kept.open = self.answer_first
        token = _kept.set(kept)
        handling: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hold(interaction.id, handling)
        try:
            try:
                yield
            except Exception as exc:
                await answer_error(interaction, exc)
        finally:
            _kept.reset(token)
            kept.open = False
            if kept.work:
                self._start(interaction.id, kept.work)
            handling.set_result(None)
            self._release(interaction.id, handling)

    def _start(self, interaction_id: int, work: list[tuple[str, Work]]) -> None:
        task = asyncio.create_task(self._run(interaction_id, work), name=f"follow-up-{interaction_id}")
        self._tasks.add(task)
        self._hold(interaction_id, task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._release(interaction_id, t)

        task.add_done_callback(done)

    async def _run(self, interaction_id: int, work: list[tuple[str, Work]]) -> None:
        """Each piece in order; one that fails is logged and the rest still run (a card that could
        not be refreshed does not keep the holder from their DM)."""
        for what, piece in work:
            try:
                await piece()
            except Exception as exc:
                follow_up_failed(what, exc, interaction_id=interaction_id)

    def _hold(self, interaction_id: int, future: asyncio.Future[None]) -> None:
        self._busy.setdefault(interaction_id, set()).add(future)

    def _release(self, interaction_id: int, future: asyncio.Future[None]) -> None:
        busy = self._busy.get(interaction_id)
        if busy is not None:
            busy.discard(future)
            if not busy:
                del self._busy[interaction_id]

    async def settled(self, interaction_id: int) -> None:
        """Wait until this interaction's handler and the follow-up work it started are done."""
        while busy := self._busy.get(interaction_id):
            await asyncio.wait(set(busy))

    async def idle(self) -> None:
        """Wait until no handler runs and no follow-up work is left."""
        while self._busy:
            await asyncio.wait({f for busy in self._busy.values() for f in busy})

    async def close(self) -> None:
        """Let the follow-up work finish (``drain_seconds`` at most), then cut the rest short."""
        try:
            await asyncio.wait_for(self.idle(), self.drain_seconds)
        except TimeoutError:
            for task in list(self._tasks):
                log.warning("follow-up work cut short at shutdown: %s", task.get_name())
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
