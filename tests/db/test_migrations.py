"""Migrations are the schema: upgrading a fresh database gives exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from bot.db.migrate import schema_is_current, upgrade_to_head
from bot.db.models import Base, LedgerHead


async def test_models_and_migrations_agree(engine):
    def diff(conn):
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await schema_is_current(engine)


async def test_upgrade_is_idempotent_and_seeds_the_ledger_head(engine, session_factory):
    await upgrade_to_head(engine)
    async with session_factory() as s:
        head = (await s.execute(select(LedgerHead))).scalars().all()
    assert [(h.id, h.last_hash) for h in head] == [(1, "0" * 64)]
