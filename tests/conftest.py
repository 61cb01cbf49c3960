"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from tests.helpers import (
    PG_SKIP_REASON,
    PG_URL,
    T0,
    RuleServices,
    create_pg_database,
    drop_pg_database,
    rule_services,
)

pytest_plugins = ["tests.conformance_plugin"]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """A fresh, empty database URL for this test; dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'warden.db'}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    url, name = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head (every test run exercises the migrations)."""
    eng = create_engine(db_url)
    await upgrade_to_head(eng)
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
