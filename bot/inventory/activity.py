"""Activity Warden can see, for dormancy: who and what was last active in each guild.

- A member is active when the gateway shows a message of theirs in the server (MESSAGE_CREATE with
  the non-privileged Guild Messages intent: the event, not its content) or when they use one of
  Warden's commands or buttons. Presence (online/offline) is not used: Warden does not ask for it.
- A webhook or another bot is active when a message of theirs is seen: the inventory's
  ``last_activity_at`` moves forward (interaction replies sent by applications do not count).

Writes are thinned out (at most one per member or identity per ``write_every``), since every
message in the server reaches here. A failure is logged and never affects anything else.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any, cast

import discord
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import IdentityKind, MemberActivity
from bot.inventory.service import InventoryService
from bot.services.base import transaction
from bot.services.batching import Batched
from bot.services.errors import Unavailable

log = logging.getLogger(__name__)

_Seen = tuple[int, int, dt.datetime, str]  # guild id, user id, when, source
_MEMBERS = cast(Table, MemberActivity.__table__)


@functools.cache
def _upsert_members(dialect: str) -> Any:
    """INSERT … ON CONFLICT (guild_id, user_id) DO UPDATE, only to a later time; built once."""
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(_MEMBERS)
    return stmt.on_conflict_do_update(
        index_elements=["guild_id", "user_id"],
        set_={"last_seen_at": stmt.excluded.last_seen_at, "source": stmt.excluded.source},
        where=_MEMBERS.c.last_seen_at < stmt.excluded.last_seen_at,
    )


WRITE_EVERY = dt.timedelta(minutes=1)
_REMEMBER_AT_MOST = 50_000  # (kind, guild, id) keys kept for thinning; cleared beyond that


class ActivityTracker:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        inventory: InventoryService,
        *,
        write_every: dt.timedelta = WRITE_EVERY,
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._inventory = inventory
        self._write_every = write_every
        self._written: dict[tuple[str, int, int], dt.datetime] = {}
        # Members seen while a write is under way share the next one (a burst of 200 people's
        # first clicks is a few transactions on the one SQLite connection, not 200).
        self._record_member: Batched[_Seen, None] = Batched(self._write_members, None)

    def _due(self, key: tuple[str, int, int], now: dt.datetime) -> bool:
        last = self._written.get(key)
        if last is not None and now - last < self._write_every:
            return False
        if len(self._written) >= _REMEMBER_AT_MOST:
            self._written.clear()
        self._written[key] = now
        return True

    async def message_seen(self, message: discord.Message) -> None:
        """A message in a guild: its webhook, bot or member was active now."""
        if message.guild is None:
            return
        now = self._clock.now()
        try:
            if message.webhook_id is not None:
                if message.interaction_metadata is not None:
                    return  # an application answering an interaction, not a channel webhook posting
                if self._due(("webhook", message.guild.id, message.webhook_id), now):
                    await self._inventory.record_activity(
                        message.guild.id, IdentityKind.WEBHOOK, str(message.webhook_id), now
                    )
            elif message.author.bot:
                if self._due(("bot", message.guild.id, message.author.id), now):
                    await self._inventory.record_activity(
                        message.guild.id, IdentityKind.BOT, str(message.author.id), now
                    )
            else:
                await self.member_seen(message.guild.id, message.author.id, "message")
        except Exception as exc:
            log.warning("activity not recorded: %s", type(exc).__name__, extra={"guild_id": message.guild.id})

    async def member_seen(self, guild_id: int, user_id: int, source: str) -> None:
        now = self._clock.now()
        if not self._due(("member", guild_id, user_id), now):
            return
        try:
            await self._record_member((guild_id, user_id, now, source))
        except Unavailable:
            # Best effort, like message_seen: an interaction during a database outage is answered
            # by its command (which says so), not followed by a traceback from this listener.
            log.warning("activity not recorded: the database is unavailable", extra={"guild_id": guild_id})

    async def _write_members(self, seen: list[_Seen]) -> dict[_Seen, None]:
        """Members seen at the same moment, in one transaction and one statement: an upsert that
        keeps the later time (another process may have written a later one meanwhile)."""
        latest: dict[tuple[int, int], _Seen] = {}
        for gid, uid, at, source in seen:
            if (gid, uid) not in latest or at > latest[(gid, uid)][2]:
                latest[(gid, uid)] = (gid, uid, at, source)
        rows = [
            {"guild_id": g, "user_id": u, "last_seen_at": at, "source": src}
            for g, u, at, src in latest.values()
        ]
        async with transaction(self._sessions) as s:
            await s.execute(_upsert_members(s.get_bind().dialect.name), rows)
        return {}

    async def last_seen(self, guild_id: int, user_id: int) -> dt.datetime | None:
        async with transaction(self._sessions) as s:
            return await s.scalar(
                select(MemberActivity.last_seen_at).where(
                    MemberActivity.guild_id == guild_id, MemberActivity.user_id == user_id
                )
            )
