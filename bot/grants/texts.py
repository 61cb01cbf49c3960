"""What grant holders are told in DMs: the words live next to the grant rules."""

from __future__ import annotations

from bot.db.models import Grant
from bot.durations import discord_ts as ts


def grant_target_text(grant: Grant) -> str:
    return f"<@&{grant.target_id}>" if grant.kind == "role" else f"<#{grant.target_id}>"


def grant_applied_dm(grant: Grant, guild_name: str, approvers: list[int]) -> str:
    who = ", ".join(f"<@{a}>" for a in approvers) or (
        "break-glass (no approval)" if grant.breakglass else "automatic approval"
    )
    return (
        f"**{grant.scope_id}** is yours in **{guild_name}** ({grant_target_text(grant)}) until "
        f"{ts(grant.expires_at)} ({ts(grant.expires_at, 'R')}). Approved by {who}. Grant #{grant.id}."
    )
