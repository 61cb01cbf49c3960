"""What every rule service shares: its collaborators (Core) and one unit of work (one session,
one transaction, fail closed)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy.exc
from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from bot.db.models import PostsCard
from bot.health import metrics
from bot.services.errors import Unavailable
from bot.services.killpoints import NO_KILL, KillSwitch

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.decisions.service import DecisionService  # noqa: TID251 (typing only: Core carries it)
    from bot.policy import GuildDirectory

log = logging.getLogger(__name__)

T = TypeVar("T")
Carded = TypeVar("Carded", bound=PostsCard)

# A card is posted right after its row commits; one still missing this long after was lost.
CARD_GRACE = dt.timedelta(seconds=30)
# While a sweep posts a lost card, the card's channel holds this (no channel has id 0).
POSTING = 0

# Errors that mean "the database is not answering", as opposed to a bug or a constraint.
DB_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    OSError,
    TimeoutError,
)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on any error; an unreachable database becomes Unavailable."""
    try:
        async with factory() as session, session.begin():
            yield session
    except DB_DOWN as exc:
        metrics.database_unavailable()
        log.error("database unavailable: %s", type(exc).__name__)
        raise Unavailable() from exc


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE run through a session.

    ``AsyncSession.execute`` is typed as returning a plain ``Result``; for DML it is a
    ``CursorResult``, which is the type that carries ``rowcount``.
    """
    return cast("CursorResult[Any]", result).rowcount


async def claim(session: AsyncSession, table: type[Any], *where: ColumnElement[bool], **values: Any) -> bool:
    """Set ``values`` on the row of ``table`` that matches ``where``; True if exactly one row changed.

    This conditional UPDATE is how a sweep or a click claims a row: of two processes racing for it,
    one changes it and the other matches nothing. Objects already in the session are left as they
    were (whoever reads the row again loads it with ``populate_existing``).
    """
    result = await session.execute(
        update(table).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


@dataclass(frozen=True)
class Core:
    """What every rule service needs: policy by guild id, sessions, the clock and the ledger
    (and the crash campaign's kill switch, inert unless ``Tuning.kill_at`` names a point)."""

    guilds: GuildDirectory
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    decisions: DecisionService
    kill: KillSwitch = NO_KILL


class Service:
    """A rule service: the shared collaborators, under the names every service uses."""

    def __init__(self, core: Core) -> None:
        self._guilds = core.guilds
        self._sessions = core.sessions
        self._clock = core.clock
        self._decisions = core.decisions
        self._kill = core.kill

    async def _all(self, statement: Select[T]) -> list[T]:
        """Every row a query selects, read in its own short transaction."""
        async with transaction(self._sessions) as session:
            return list((await session.scalars(statement)).all())

    async def _post_lost_cards(
        self,
        table: type[Carded],
        pending: ColumnElement[bool],
        open_until: InstrumentedAttribute[dt.datetime],
        post: Callable[[Carded], Awaitable[object]],
        *,
        grace: dt.timedelta,
        limit: int,
    ) -> int:
        """Post the card of every ``pending`` row (still open: ``open_until`` later than now) whose
        card never reached Discord, once; the number posted.

        The card is posted after the row commits, so a process killed in between (or a post Discord
        refused) leaves a row nobody can act on once ``grace`` has passed. Each row is claimed (the
        card's channel set to a marker) so two processes do not both post it; if the post fails the
        claim is released and the next sweep tries again."""
        now = self._clock.now()
        mapped: Any = table  # a mapped class: its ``id`` and ``created_at`` columns
        lost = await self._all(
            select(mapped.id)
            .where(
                pending,
                table.card_message_id.is_(None),
                table.card_channel_id.is_(None),
                mapped.created_at <= now - grace,
                open_until > now,
            )
            .order_by(mapped.id)
            .limit(limit)
        )
        posted = 0
        for row_id in lost:
            async with transaction(self._sessions) as session:
                unclaimed = (mapped.id == row_id, table.card_channel_id.is_(None))
                if not await claim(session, table, *unclaimed, card_channel_id=POSTING):
                    continue  # another process posts it
                row = await session.get_one(table, row_id, populate_existing=True)
            await post(row)
            if row.card_message_id is not None:
                posted += 1
                continue
            async with transaction(self._sessions) as session:  # not posted: the next sweep tries again
                ours = (mapped.id == row_id, table.card_channel_id == POSTING)
                await claim(session, table, *ours, card_channel_id=None)
        return posted
