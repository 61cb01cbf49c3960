"""What a member sees about their own requests: the /jit mine listing."""

from __future__ import annotations

import datetime as dt

import discord

from bot.db.models import AccessRequest, Grant, GrantStatus
from bot.durations import discord_ts as ts
from bot.durations import format_duration

BLUE = discord.Colour.blurple()


def mine_embed(pending: list[AccessRequest], active: list[Grant]) -> discord.Embed:
    embed = discord.Embed(title="Your access", colour=BLUE)
    if pending:
        embed.add_field(
            name="Pending requests",
            value="\n".join(
                f"#{r.id} `{r.scope_id}` for {format_duration(dt.timedelta(seconds=r.duration_seconds))} — "
                f"expires {ts(r.pending_until, 'R')}"
                for r in pending
            )[:1024],
            inline=False,
        )
    if active:
        embed.add_field(
            name="Active grants",
            value="\n".join(
                f"grant #{g.id} `{g.scope_id}` — until {ts(g.expires_at)} ({ts(g.expires_at, 'R')})"
                if g.status == GrantStatus.ACTIVE
                else f"grant #{g.id} `{g.scope_id}` — {g.status}"
                for g in active
            )[:1024],
            inline=False,
        )
    if not pending and not active:
        embed.description = "You have no pending requests and no active grants. Ask with `/jit request`."
    return embed
