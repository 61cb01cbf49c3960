"""Guild pins in the database: which guild id a ``[guild.<name>]`` table belongs to.

The rules (who is pinned, when a sighting is ambiguous) live in ``bot.policy.GuildDirectory``;
this module only reads and writes the rows, so any process sharing the database sees one pin.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import GuildPin


async def load_pins(sessions: async_sessionmaker[AsyncSession]) -> list[GuildPin]:
    """Every pin."""
    async with sessions() as session:
        return list((await session.execute(select(GuildPin))).scalars().all())


async def claim_pin(
    sessions: async_sessionmaker[AsyncSession], key: str, guild_id: int, guild_name: str, now: dt.datetime
) -> GuildPin:
    """Pin ``key`` to ``guild_id`` unless it is pinned already; returns the pin that holds.

    The key is the primary key, so when two processes see two same-named guilds at once the
    first insert wins and the second reads the winner back.
    """
    async with sessions() as session:
        try:
            async with session.begin():
                session.add(GuildPin(key=key, guild_id=guild_id, guild_name=guild_name[:100], pinned_at=now))
        except sqlalchemy.exc.IntegrityError:
            pass
    async with sessions() as session:
        return (await session.execute(select(GuildPin).where(GuildPin.key == key))).scalar_one()


async def confirm_pin(
    sessions: async_sessionmaker[AsyncSession], key: str, guild_id: int, admin_id: int, now: dt.datetime
) -> GuildPin | None:
    """Record that a server admin confirmed the pin (the first confirmation stays); None if not pinned here."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(GuildPin)
            .where(GuildPin.key == key, GuildPin.guild_id == guild_id, GuildPin.confirmed_by.is_(None))
            .values(confirmed_by=admin_id, confirmed_at=now)
        )
        row = (await session.execute(select(GuildPin).where(GuildPin.key == key))).scalar_one_or_none()
    return row if row is not None and row.guild_id == guild_id else None
