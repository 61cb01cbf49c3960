"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db.session import create_engine, create_session_factory
from tests.helpers import (
    PG_SKIP_REASON,
    PG_URL,
    T0,
    MigratedDatabases,
    RuleServices,
    rule_services,
)

pytest_plugins = ["tests.conformance_plugin"]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(tmp_path_factory.mktemp("databases"))
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, migrated_databases: MigratedDatabases) -> AsyncIterator[str]:
    """A fresh database for this test, already migrated to head; dropped afterwards.

    It is a copy of a template migrated from empty once per backend and session (tests.helpers
    MigratedDatabases), so every run still exercises the migrations on both backends.
    """
    if request.param == "sqlite":
        yield await migrated_databases.sqlite()
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    url, name = await migrated_databases.postgres()
    try:
        yield url
    finally:
        migrated_databases.release(name)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on this test's (migrated) database."""
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0, frozen=True)


@pytest.fixture
def rules(session_factory: async_sessionmaker[AsyncSession], clock: ManualClock) -> RuleServices:
    """The request, approval and pending services on this test's database, Discord faked (tests.helpers)."""
    return rule_services(session_factory, clock)
