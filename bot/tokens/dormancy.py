"""Dormancy: what nobody uses loses its access (run by ``Jobs.run_due``).

- An access token not verified for the guild's ``token_dormant_after`` (counted from issue when it
  was never used) is revoked; its grant, if any, ends with it.
- With the guild's ``end_idle_grants_after`` set (not "0s"), a JIT grant whose holder Warden has not
  seen active for that long is ended early. "Active" is what the bot can see: a message in the
  server (the gateway's MESSAGE_CREATE, no content needed) or an interaction with Warden; the clock
  starts no earlier than the grant's start, so a grant is never ended for idleness before it began.

Every revocation is a ledger decision with a narrative (``bot.decisions.outcomes``), committed with
the change, and the holder gets a DM.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Grant, GrantStatus, MemberActivity
from bot.decisions import outcomes
from bot.durations import format_duration
from bot.services.base import Core, Service
from bot.tokens.service import TokenInfo, TokenService

log = logging.getLogger(__name__)


class GrantEnder(Protocol):
    async def end_early(
        self, grant_id: int, *, rule: str, reason: str, extra: dict[str, object] | None = None
    ) -> object | None: ...


class TokenNotifier(Protocol):
    async def token_revoked(self, info: TokenInfo, why: str) -> None: ...


class Dormancy(Service):
    def __init__(
        self, core: Core, *, tokens: TokenService, grants: GrantEnder, notifier: TokenNotifier
    ) -> None:
        super().__init__(core)
        self._tokens = tokens
        self._grants = grants
        self._notifier = notifier

    async def revoke_dormant_tokens(self) -> list[TokenInfo]:
        """Each guild's tokens unused for its ``token_dormant_after``: revoked, recorded, holders told.

        A guild this process has not bound (another shard's) is left to the process that has it.
        """
        now = self._clock.now()
        revoked: list[TokenInfo] = []
        for guild_id in await self._tokens.active_guilds():
            gp = self._guilds.get(guild_id)
            if gp is None:
                continue
            period = gp.token_dormant_after
            why = f"not used for {format_duration(period)}"

            async def record(session: AsyncSession, info: TokenInfo, why: str = why) -> None:
                reason = (
                    f"Access token {info.id} for {info.scope_id} was {why} "
                    f"({'last used ' + info.last_used_at.isoformat() if info.last_used_at else 'never used'}), "
                    "so Warden revoked it as dormant"
                    + (f"; grant #{info.grant_id} ends with it." if info.grant_id else ".")
                )
                decision = outcomes.token_revoked(
                    info, rule="guild.token_dormant_after", reason=reason, extra={"dormant_after": why}
                )
                await self._decisions.record(session, decision)

            for info in await self._tokens.revoke_dormant(now, period, guild_id=guild_id, record=record):
                revoked.append(info)
                await self._notifier.token_revoked(info, f"it was {why} (dormant)")
                if info.grant_id is not None:
                    await self._grants.end_early(
                        info.grant_id,
                        rule="guild.token_dormant_after",
                        reason=f"Its access token {info.id} was revoked as dormant ({why}).",
                        extra={"token": info.id},
                    )
        if revoked:
            log.info("revoked %d dormant token(s)", len(revoked))
        return revoked

    async def end_idle_grants(self) -> int:
        """Grants whose holder was not seen active for the guild's ``end_idle_grants_after``: ended.

        Idle is counted from the later of the grant's start and the holder's last message or
        interaction, so a grant is never ended for idleness before it began. Off ("0s") by default.
        """
        now = self._clock.now()
        ended = 0
        guild_ids = await self._all(
            select(Grant.guild_id).where(Grant.status == GrantStatus.ACTIVE).distinct()
        )
        for guild_id in guild_ids:
            gp = self._guilds.get(guild_id)
            period = gp.end_idle_grants_after if gp else dt.timedelta(0)
            if period <= dt.timedelta(0):
                continue
            cutoff = now - period
            idle = await self._all(
                select(Grant)
                .outerjoin(
                    MemberActivity,
                    and_(
                        MemberActivity.guild_id == Grant.guild_id, MemberActivity.user_id == Grant.subject_id
                    ),
                )
                .where(
                    Grant.guild_id == guild_id,
                    Grant.status == GrantStatus.ACTIVE,
                    Grant.subject_is_bot.is_(False),
                    Grant.applied_at <= cutoff,
                    Grant.expires_at > now,
                    or_(MemberActivity.last_seen_at.is_(None), MemberActivity.last_seen_at <= cutoff),
                )
                .order_by(Grant.id)
            )
            for grant in idle:
                seen = await self._last_seen(grant.guild_id, grant.subject_id)
                since = max(grant.applied_at or cutoff, seen) if seen else grant.applied_at
                reason = (
                    f"<@{grant.subject_id}> has not been seen active in the server (no message and no "
                    f"interaction with Warden) for {format_duration(period)}, since "
                    f"{since.isoformat() if since else 'the grant began'}, so Warden ended grant #{grant.id} early."
                )
                done = await self._grants.end_early(
                    grant.id,
                    rule="guild.end_idle_grants_after",
                    reason=reason,
                    extra={"idle_for": format_duration(period), "last_seen_at": seen},
                )
                ended += done is not None
        if ended:
            log.info("ended %d grant(s) of idle holders", ended)
        return ended

    async def _last_seen(self, guild_id: int, user_id: int) -> dt.datetime | None:
        rows = await self._all(
            select(MemberActivity.last_seen_at).where(
                MemberActivity.guild_id == guild_id, MemberActivity.user_id == user_id
            )
        )
        return rows[0] if rows else None
