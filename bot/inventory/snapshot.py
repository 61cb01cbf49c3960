"""Plain data describing a guild's non-human identities, and the adapter from discord.py objects.

The inventory is fed from a :class:`GuildSnapshot`, never from discord.py directly, so the same
service runs on the live gateway cache, on the sandbox, or on data written by hand in a test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import discord

from bot.inventory.permissions import (
    ChannelKind,
    Overwrite,
    channel_kind_of,
    channel_permissions,
    guild_permissions,
    overwrites_of,
)


@dataclass(frozen=True, slots=True)
class ChannelData:
    id: int
    kind: ChannelKind = ChannelKind.TEXT
    overwrites: tuple[Overwrite, ...] = ()


@dataclass(frozen=True, slots=True)
class BotData:
    id: int
    name: str
    role_ids: tuple[int, ...] = ()
    # Who added it, from the audit log (bot_add); the inferred owner.
    added_by: int | None = None
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class WebhookData:
    id: int
    name: str
    channel_id: int
    creator_id: int | None = None  # the inferred owner


@dataclass(frozen=True, slots=True)
class IntegrationData:
    id: int
    name: str
    type: str = "discord"
    scopes: tuple[str, ...] = ()
    added_by: int | None = None  # the inferred owner
    bot_id: int | None = None  # its bot user, whose permissions it acts with


@dataclass(frozen=True, slots=True)
class GuildSnapshot:
    guild_id: int
    owner_id: int | None
    # Every role id (including @everyone, whose id is the guild id) → its permission integer.
    role_permissions: dict[int, int]
    channels: tuple[ChannelData, ...] = ()
    bots: tuple[BotData, ...] = ()
    webhooks: tuple[WebhookData, ...] = ()
    integrations: tuple[IntegrationData, ...] = ()
    taken_at: dt.datetime | None = None

    @property
    def countable_channels(self) -> tuple[ChannelData, ...]:
        """Channels that count for reach: categories hold no messages."""
        return tuple(c for c in self.channels if c.kind is not ChannelKind.CATEGORY)


@dataclass(frozen=True, slots=True)
class Reach:
    """A member's effective permissions guild-wide and in each countable channel."""

    permissions: int
    channels: dict[int, int] = field(default_factory=dict)


def bot_reach(snapshot: GuildSnapshot, bot: BotData) -> Reach:
    roles = [r for r in bot.role_ids if r != snapshot.guild_id]
    guild_wide = guild_permissions(
        member_id=bot.id,
        owner_id=snapshot.owner_id,
        everyone_permissions=snapshot.role_permissions.get(snapshot.guild_id, 0),
        role_permissions=(snapshot.role_permissions.get(r, 0) for r in roles),
        timed_out=bot.timed_out,
    )
    per_channel = {
        c.id: channel_permissions(
            guild_id=snapshot.guild_id,
            owner_id=snapshot.owner_id,
            member_id=bot.id,
            member_role_ids=roles,
            role_permissions=snapshot.role_permissions,
            overwrites=c.overwrites,
            kind=c.kind,
            timed_out=bot.timed_out,
        )
        for c in snapshot.countable_channels
    }
    return Reach(guild_wide, per_channel)


# --------------------------------------------------------------------- discord.py adapter


def snapshot_from_discord(
    guild: discord.Guild,
    *,
    webhooks: Iterable[discord.Webhook] = (),
    integrations: Iterable[discord.Integration] = (),
    added_by: dict[int, int] | None = None,
    taken_at: dt.datetime | None = None,
) -> GuildSnapshot:
    """Describe a discord.py guild (from the cache) plus its fetched webhooks and integrations.

    ``added_by`` maps bot user ids to the member who added them (the audit log's bot_add entries);
    webhooks and integrations carry their creator themselves.
    """
    added_by = added_by or {}
    integration_list = list(integrations)
    integration_bots = {
        i.application.user.id: i.user.id
        for i in integration_list
        if isinstance(i, discord.BotIntegration) and i.application.user is not None and i.user is not None
    }
    return GuildSnapshot(
        guild_id=guild.id,
        owner_id=guild.owner_id,
        role_permissions={r.id: r.permissions.value for r in guild.roles},
        channels=tuple(
            ChannelData(id=c.id, kind=channel_kind_of(c), overwrites=tuple(overwrites_of(c)))
            for c in guild.channels
        ),
        bots=tuple(
            BotData(
                id=m.id,
                name=str(m),
                role_ids=tuple(r.id for r in m.roles if r.id != guild.id),
                added_by=added_by.get(m.id, integration_bots.get(m.id)),
                timed_out=m.is_timed_out(),
            )
            for m in guild.members
            if m.bot
        ),
        webhooks=tuple(
            WebhookData(
                id=w.id,
                name=w.name or "",
                channel_id=w.channel_id or 0,
                creator_id=w.user.id if w.user is not None else None,
            )
            for w in webhooks
        ),
        integrations=tuple(
            IntegrationData(
                id=i.id,
                name=i.name,
                type=i.type,
                scopes=tuple(i.scopes),
                added_by=i.user.id if i.user is not None else None,
                bot_id=(
                    i.application.user.id
                    if isinstance(i, discord.BotIntegration) and i.application.user is not None
                    else None
                ),
            )
            for i in integration_list
        ),
        taken_at=taken_at,
    )
