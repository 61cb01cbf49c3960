"""``GrantLedger`` over the grants table: which active grant sanctions a member's access.

A grant sanctions access while it is approved (being applied), active, or being
removed (Warden itself will take it away; a revert must not race that removal).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Grant, GrantStatus

SANCTIONING = (GrantStatus.APPROVED, GrantStatus.APPLYING, GrantStatus.ACTIVE, GrantStatus.REMOVING)


class SqlGrantLedger:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def sanctioning_grant(
        self, guild_id: int, member_id: int, kind: Literal["role", "channel"], target_id: int
    ) -> int | None:
        async with self._sessions() as session:
            grant_id: int | None = await session.scalar(
                select(Grant.id)
                .where(
                    Grant.guild_id == guild_id,
                    Grant.subject_id == member_id,
                    Grant.kind == kind,
                    Grant.target_id == target_id,
                    Grant.status.in_([s.value for s in SANCTIONING]),
                )
                .order_by(Grant.id)
                .limit(1)
            )
            return grant_id
