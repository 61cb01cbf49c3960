"""``GrantLedger`` over the grants table: which active grant sanctions a member's access.

A grant sanctions access while it is approved (being applied), active, or being
removed (Warden itself will take it away; a revert must not race that removal).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.audit.ports import SanctionKey
from bot.db.models import Grant, GrantStatus

SANCTIONING = (GrantStatus.APPROVED, GrantStatus.APPLYING, GrantStatus.ACTIVE, GrantStatus.REMOVING)


class SqlGrantLedger:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def sanctioning_grant(
        self, guild_id: int, member_id: int, kind: Literal["role", "channel"], target_id: int
    ) -> int | None:
        key: SanctionKey = (member_id, kind, target_id)
        return (await self.sanctioning_grants(guild_id, [key])).get(key)

    async def sanctioning_grants(
        self, guild_id: int, keys: Collection[SanctionKey]
    ) -> dict[SanctionKey, int]:
        """One query for a whole batch of entries (the oldest sanctioning grant of each access)."""
        wanted = set(keys)
        if not wanted:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(
                select(Grant.id, Grant.subject_id, Grant.kind, Grant.target_id)
                .where(
                    Grant.guild_id == guild_id,
                    Grant.subject_id.in_(sorted({member for member, _, _ in wanted})),
                    Grant.status.in_([s.value for s in SANCTIONING]),
                )
                .order_by(Grant.id)
            )
            found: dict[SanctionKey, int] = {}
            for grant_id, member_id, kind, target_id in rows:
                key = (member_id, kind, target_id)
                if key in wanted:
                    found.setdefault(key, grant_id)
            return found
