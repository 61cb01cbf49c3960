"""What every rule service shares: its collaborators (Core) and one unit of work (one session,
one transaction, fail closed)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy.exc
from sqlalchemy import Select
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.health import metrics
from bot.services.errors import Unavailable
from bot.services.killpoints import NO_KILL, KillSwitch

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.decisions.service import DecisionService  # noqa: TID251 (typing only: Core carries it)
    from bot.policy import GuildDirectory

log = logging.getLogger(__name__)

T = TypeVar("T")

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
