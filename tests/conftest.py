"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.clock import ManualClock
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory

pytest_plugins = ["tests.conformance_plugin"]

PG_URL = os.environ.get("WARDEN_TEST_DATABASE_URL")
PG_SKIP_REASON = (
    "PostgreSQL tests need WARDEN_TEST_DATABASE_URL "
    "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test); .ci/run sets it when a server answers"
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


async def _create_pg_database() -> tuple[str, str]:
    assert PG_URL
    base = make_url(PG_URL)
    name = f"warden_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False), name


async def _drop_pg_database(name: str) -> None:
    admin = create_async_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """A fresh, empty database URL for this test; dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'warden.db'}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    url, name = await _create_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


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
    return ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), frozen=True)
