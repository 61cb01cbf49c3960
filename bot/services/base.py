"""The unit of work every service uses: one session, one transaction, fail closed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import sqlalchemy.exc
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.health import metrics
from bot.services.errors import Unavailable

log = logging.getLogger(__name__)

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
