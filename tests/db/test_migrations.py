"""Migrations are the schema: upgrading a fresh database gives exactly the models."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from bot.db.migrate import alembic_config, declared_heads, schema_is_current, upgrade_to_head
from bot.db.models import Base, LedgerHead

ROOT = Path(__file__).resolve().parents[2]


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


def test_declared_heads_are_alembics_heads() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert declared_heads() == frozenset(script.get_heads())


def test_declared_heads_leave_anything_unusual_to_alembic(tmp_path: Path) -> None:
    (tmp_path / "0001_a.py").write_text('revision = "0001"\ndown_revision = None\n')
    (tmp_path / "0002_b.py").write_text('revision: str = "0002"\ndown_revision: str | None = "0001"\n')
    assert declared_heads(tmp_path) == {"0002"}
    (tmp_path / "0003_merge.py").write_text('revision = "0003"\ndown_revision = ("0001", "0002")\n')
    assert declared_heads(tmp_path) is None


# A fresh interpreter: the test process imported Alembic long ago.
_START = """
import asyncio, sys
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine

async def main():
    engine = create_engine(sys.argv[1])
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
print(sorted(m for m in ("alembic", "mako", "pygments") if m in sys.modules))
"""


async def test_a_current_database_starts_without_importing_alembic(db_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _START, db_url, cwd=ROOT, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "[]"


async def test_an_older_database_is_still_upgraded(engine) -> None:
    from alembic import command

    def downgrade(conn):
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade)
    assert not await schema_is_current(engine)
    await upgrade_to_head(engine)
    assert await schema_is_current(engine)
