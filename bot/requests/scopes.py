"""Which policy applies here, and which scope a command names (also used by autocomplete)."""

from __future__ import annotations

import discord

from bot.grantability import may_request
from bot.policy import GuildDirectory, GuildPolicy, Scope
from bot.services.errors import BadInput


def guild_policy(guilds: GuildDirectory, guild_id: int) -> GuildPolicy:
    gp = guilds.get(guild_id)
    if gp is None:
        if guilds.explain(guild_id, guilds.name(guild_id)):
            raise BadInput(
                "This server has no Warden policy: the [guild] table with its name belongs to another "
                "server. A server admin can run `/warden doctor` to see why and how to fix it."
            )
        raise BadInput(
            "This server has no Warden policy. A server admin must add a [guild] section "
            f"for '{guilds.name(guild_id)}' (or {guild_id}) to config.toml."
        )
    return gp


def requestable_scopes(guilds: GuildDirectory, member: discord.Member) -> list[Scope]:
    return [s for s in guilds.scopes(member.guild.id) if may_request(s, member)]


def scope_for(
    guilds: GuildDirectory, guild_id: int, scope_id: str, member: discord.Member | None = None
) -> Scope:
    gp = guild_policy(guilds, guild_id)
    scope = guilds.policy.scope(gp, scope_id.strip())
    if scope is None:
        names = [
            s.id for s in (requestable_scopes(guilds, member) if member else guilds.policy.scopes_for(gp))
        ]
        choices = ", ".join(f"`{n}`" for n in names) or "none"
        # What was typed, quoted back in a code span: no backticks to break out, at most 64 characters.
        typed = scope_id.strip().replace("`", "'")
        typed = typed if len(typed) <= 64 else typed[:60] + "…"
        raise BadInput(
            f"There is no scope named `{typed}`. Scopes you can request: {choices}. Pick one from the list."
        )
    return scope
