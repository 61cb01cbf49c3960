"""`warden migrate` and the migrate-at-start of `warden run`: Alembic, driven from code.

A database already at the newest revision is the usual start: it is recognised by comparing its
``alembic_version`` row with the revisions the migration files declare, without importing Alembic
(Alembic, Mako and Pygments cost `warden run` about 11 MB of resident memory for as long as it
runs, to learn that there is nothing to do). Anything else — a new or older database, or a
migration file whose revision lines are not plain strings — goes through Alembic as before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Several `warden run` processes (shards) start at once on one PostgreSQL: one migrates, the others
# wait on this advisory lock and then find the schema current.
MIGRATION_LOCK_ID = 0x5741_5244_454E  # "WARDEN"
VERSION_TABLE = "alembic_version"  # Alembic's default; migrations/env.py does not change it

_REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*["']([^"'\s]+)["']\s*$""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(?:None|["']([^"'\s]+)["'])\s*$""", re.M)


def alembic_config(url: str = "") -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def declared_heads(versions: Path = MIGRATIONS_DIR / "versions") -> frozenset[str] | None:
    """The head revisions the migration files declare, read as text (no Alembic, no imports).

    None when a file does not state one ``revision`` and one ``down_revision`` as plain strings
    (or ``None``): a merge or anything unusual is left to Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.findall(source)
        down = _DOWN_REVISION.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0]:
            parents.add(down[0])
    heads = revisions - parents
    return frozenset(heads) if heads and parents <= revisions else None


def _stamped(connection: Connection) -> frozenset[str] | None:
    """The revisions the database says it is at (None: never migrated)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text("SELECT version_num FROM " + VERSION_TABLE))
    return frozenset(str(r[0]) for r in rows)


def _upgrade(connection: Connection, cfg: Config) -> None:
    from alembic import command

    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _upgrade_unless_current(connection: Connection) -> None:
    heads = declared_heads()
    if heads is not None and _stamped(connection) == heads:
        return  # what Alembic would find too: nothing to run
    _upgrade(connection, alembic_config())


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await conn.run_sync(_upgrade_unless_current)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def schema_is_current(engine: AsyncEngine) -> bool:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with engine.connect() as conn:
        return await conn.run_sync(_current) == head
