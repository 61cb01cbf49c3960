"""The audit room's ports over discord.py: guild facts from the cache, reverts through
``DiscordOps`` (retries and audit-log reasons), and pages of ``GET /guilds/{id}/audit-logs``.

Nothing here decides anything; :mod:`bot.audit` holds the rules.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import discord
from discord.http import Route

from bot.audit.actions import (
    AddMemberRole,
    DeleteOverwrite,
    DeleteWebhook,
    EditRolePermissions,
    RemoveMemberRole,
    RevertAction,
    SetGuildSetting,
    SetOverwrite,
)
from bot.discord_io.ops import DiscordOps, audit_reason
from bot.grantability import resolve_role

log = logging.getLogger(__name__)

#: Discord's page size for the audit log.
PAGE_SIZE = 100


class CacheGuildFacts:
    """``GuildFacts`` and ``GuildSnapshot`` over discord.py's cache (no Discord calls)."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    def _guild(self, guild_id: int) -> discord.Guild | None:
        return self._client.get_guild(guild_id)

    def role_id(self, guild_id: int, ref: str | int) -> int | None:
        guild = self._guild(guild_id)
        if guild is None:
            return ref if isinstance(ref, int) else None
        role = resolve_role(guild, ref)
        return role.id if role is not None else None

    def role_permissions(self, guild_id: int, role_id: int) -> int | None:
        guild = self._guild(guild_id)
        role = guild.get_role(role_id) if guild else None
        return role.permissions.value if role is not None else None

    def _member(self, guild_id: int, member_id: int) -> discord.Member | None:
        guild = self._guild(guild_id)
        return guild.get_member(member_id) if guild else None

    def member_role_ids(self, guild_id: int, member_id: int) -> frozenset[int] | None:
        member = self._member(guild_id, member_id)
        if member is None:
            return None
        return frozenset(r.id for r in member.roles if not r.is_default())

    def member_permissions(self, guild_id: int, member_id: int) -> int | None:
        member = self._member(guild_id, member_id)
        return member.guild_permissions.value if member is not None else None

    def is_bot(self, guild_id: int, user_id: int) -> bool | None:
        member = self._member(guild_id, user_id)
        if member is not None:
            return member.bot
        user = self._client.get_user(user_id)
        return user.bot if user is not None else None

    def managed_role_id(self, guild_id: int, bot_id: int) -> int | None:
        guild = self._guild(guild_id)
        if guild is None:
            return None
        role = next((r for r in guild.roles if r.tags is not None and r.tags.bot_id == bot_id), None)
        return role.id if role is not None else None

    def channel_is_private(self, guild_id: int, channel_id: int) -> bool | None:
        guild = self._guild(guild_id)
        channel = guild.get_channel(channel_id) if guild else None
        if guild is None or channel is None:
            return None
        return not channel.permissions_for(guild.default_role).view_channel

    def name_of(self, guild_id: int, target_id: int) -> str | None:
        guild = self._guild(guild_id)
        if guild is None:
            return None
        if target_id == guild_id:
            return guild.name
        thing: Any = guild.get_role(target_id) or guild.get_member(target_id) or guild.get_channel(target_id)
        return getattr(thing, "name", None)

    def owner_id(self, guild_id: int) -> int | None:
        guild = self._guild(guild_id)
        return guild.owner_id if guild is not None else None

    def members_with_role(self, guild_id: int, role_id: int) -> frozenset[int] | None:
        guild = self._guild(guild_id)
        if guild is None or not guild.chunked:
            return None
        role = guild.get_role(role_id)
        return frozenset(m.id for m in role.members) if role is not None else None


class DiscordReverter:
    """``Reverter`` over ``DiscordOps``: each revert action as one retried Discord call."""

    def __init__(self, client: discord.Client, ops: DiscordOps) -> None:
        self._client = client
        self._ops = ops

    async def perform(self, action: RevertAction, reason: str) -> None:
        """One revert; what no longer exists (the webhook deleted, the member gone) is nothing to undo."""
        try:
            await self._perform(action, reason)
        except discord.NotFound:
            log.info("revert target already gone: %s", action.describe(), extra={"guild_id": action.guild_id})

    async def _perform(self, action: RevertAction, reason: str) -> None:
        http = self._client.http
        why = audit_reason(reason)
        if isinstance(action, RemoveMemberRole):
            await self._ops.call(
                lambda: http.remove_role(action.guild_id, action.member_id, action.role_id, reason=why)
            )
        elif isinstance(action, AddMemberRole):
            await self._ops.call(
                lambda: http.add_role(action.guild_id, action.member_id, action.role_id, reason=why)
            )
        elif isinstance(action, EditRolePermissions):
            await self._edit_role(action, why)
        elif isinstance(action, DeleteOverwrite):
            await self._ops.call(
                lambda: http.delete_channel_permissions(action.channel_id, action.target_id, reason=why)
            )
        elif isinstance(action, SetOverwrite):
            kind: Literal[0, 1] = 0 if action.target_type == "role" else 1
            await self._ops.call(
                lambda: http.edit_channel_permissions(
                    action.channel_id, action.target_id, str(action.allow), str(action.deny), kind, reason=why
                )
            )
        elif isinstance(action, DeleteWebhook):
            route = Route("DELETE", "/webhooks/{webhook_id}", webhook_id=action.webhook_id)
            await self._ops.call(lambda: http.request(route, reason=why))
        elif isinstance(action, SetGuildSetting):
            if action.key == "mfa_level":
                await self._ops.call(
                    lambda: http.edit_guild_mfa_level(action.guild_id, mfa_level=action.value, reason=why)
                )
            else:
                fields = {action.key: action.value}
                await self._ops.call(lambda: http.edit_guild(action.guild_id, reason=why, **fields))

    async def _edit_role(self, action: EditRolePermissions, reason: str) -> None:
        """Clear/set only the bits the event changed, on the role's permissions as they are now."""
        http = self._client.http
        guild = self._client.get_guild(action.guild_id)
        role = guild.get_role(action.role_id) if guild else None
        if role is not None:
            current = role.permissions.value
        else:
            data = await self._ops.call(lambda: http.get_role(action.guild_id, action.role_id))
            current = int(data.get("permissions") or 0)
        wanted = action.apply_to(current)
        if wanted == current:
            return
        await self._ops.call(
            lambda: http.edit_role(action.guild_id, action.role_id, reason=reason, permissions=str(wanted))
        )


def audit_log_pages(client: discord.Client, ops: DiscordOps) -> Any:
    """``FetchPage``: the entries right after ``after`` (or the newest page), as Discord sends them."""

    async def fetch(guild_id: int, after: int | None) -> list[dict[str, Any]]:
        data = await ops.call(lambda: client.http.get_audit_logs(guild_id, limit=PAGE_SIZE, after=after))
        return [dict(e) for e in data.get("audit_log_entries", [])]

    return fetch
