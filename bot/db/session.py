"""Engine and session factory, built once at start-up and handed in."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import Select, bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///warden.db"
M = TypeVar("M")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One connection: SQLite allows one writer, and async sessions interleaving
        # on several connections deadlock each other ("database is locked").
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("connect_args", {"timeout": 30})
        # No pre-ping: a local file cannot drop the connection, and the ping costs a round trip
        # to aiosqlite's thread on every transaction.
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: no fsync per commit (only at checkpoints); still crash-safe.
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_BY_ID: dict[tuple[type[Any], bool], Select[Any]] = {}


def _by_id(model: type[Any], lock: bool) -> Select[Any]:
    statement = _BY_ID.get((model, lock))
    if statement is None:
        statement = select(model).where(model.id == bindparam("id")).execution_options(populate_existing=True)
        _BY_ID[(model, lock)] = statement = statement.with_for_update() if lock else statement
    return statement


async def fresh(session: AsyncSession, model: type[M], row_id: int, *, lock: bool = False) -> M | None:
    """The row as the database has it now (``session.get(..., populate_existing=True)``), locked
    for this transaction if ``lock``. The statement is built once per model: SQLAlchemy spends as
    long building a statement and its cache key as SQLite spends running it, and these reloads sit
    on every click's path."""
    return cast("M | None", await session.scalar(_by_id(model, lock), {"id": row_id}))
