"""Effective permissions, computed the way Discord computes them.

Discord's documented algorithm ("Permissions" → "Permission Overwrites"):

1. Base: the guild owner has everything. Otherwise the @everyone role's permissions OR'd
   with every role the member has; Administrator then means everything.
2. Channel: Administrator (from the base) means everything, overwrites cannot take it away.
   Otherwise apply the @everyone overwrite (deny, then allow), then all of the member's role
   overwrites together (deny of all of them, then allow of all of them), then the member's
   own overwrite.
3. Implicit rules: without View Channel a member has no channel permission at all there;
   without Send Messages in a text channel, no Send TTS, Mention @everyone, Embed Links or
   Attach Files; without Connect in a voice channel, no voice permission and no Manage
   Channel/Manage Permissions; text channels carry no voice permission. A timed-out member
   keeps only View Channel and Read Message History.

The functions here take plain data (ids and permission integers) so the inventory can be fed
from discord.py objects, from the sandbox or from stored rows; :func:`member_channel_permissions`
and :func:`member_guild_permissions` adapt discord.py objects to them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import discord

ALL = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value
VIEW_CHANNEL = discord.Permissions(view_channel=True).value
SEND_MESSAGES = discord.Permissions(send_messages=True).value
CONNECT = discord.Permissions(connect=True).value
READ_MESSAGE_HISTORY = discord.Permissions(read_message_history=True).value
# Everything that only means something inside a channel (guild-wide ones such as Kick or Ban survive
# a missing View Channel: they do not depend on the channel).
ALL_CHANNEL = discord.Permissions.all_channel().value
VOICE = discord.Permissions.voice().value
NEEDS_SEND = discord.Permissions(
    send_tts_messages=True, mention_everyone=True, embed_links=True, attach_files=True
).value
NEEDS_CONNECT = VOICE | discord.Permissions(manage_channels=True, manage_roles=True).value
TIMEOUT_KEEPS = VIEW_CHANNEL | READ_MESSAGE_HISTORY


class OverwriteKind(enum.StrEnum):
    ROLE = "role"
    MEMBER = "member"


class ChannelKind(enum.StrEnum):
    """Which implicit rules apply (Discord's channel types, grouped)."""

    TEXT = "text"  # text, announcement, forum, media
    VOICE = "voice"  # voice, stage
    CATEGORY = "category"  # no implicit rules


@dataclass(frozen=True, slots=True)
class Overwrite:
    """One channel permission overwrite: ``id`` is a role id (the guild id for @everyone) or a member id."""

    id: int
    kind: OverwriteKind
    allow: int = 0
    deny: int = 0


def base_permissions(
    *,
    member_id: int,
    owner_id: int | None,
    everyone_permissions: int,
    role_permissions: Iterable[int],
) -> int:
    """Guild-wide permissions of a member: owner → all; @everyone | roles; Administrator → all."""
    if owner_id is not None and member_id == owner_id:
        return ALL
    perms = everyone_permissions
    for value in role_permissions:
        perms |= value
    if perms & ADMINISTRATOR:
        return ALL
    return perms


def guild_permissions(
    *,
    member_id: int,
    owner_id: int | None,
    everyone_permissions: int,
    role_permissions: Iterable[int],
    timed_out: bool = False,
) -> int:
    """Guild-wide permissions as Discord enforces them now: the base, narrowed by a timeout."""
    base = base_permissions(
        member_id=member_id,
        owner_id=owner_id,
        everyone_permissions=everyone_permissions,
        role_permissions=role_permissions,
    )
    if base != ALL and timed_out:
        base &= TIMEOUT_KEEPS
    return base


def apply_overwrites(
    base: int,
    *,
    guild_id: int,
    member_id: int,
    member_role_ids: Iterable[int],
    overwrites: Sequence[Overwrite],
) -> int:
    """Channel permissions before implicit rules: @everyone, then roles together, then the member."""
    if base & ADMINISTRATOR:
        return ALL
    perms = base
    everyone = next((o for o in overwrites if o.kind is OverwriteKind.ROLE and o.id == guild_id), None)
    if everyone is not None:
        perms = (perms & ~everyone.deny) | everyone.allow
    roles = set(member_role_ids)
    allow = deny = 0
    for o in overwrites:
        if o.kind is OverwriteKind.ROLE and o.id != guild_id and o.id in roles:
            allow |= o.allow
            deny |= o.deny
    perms = (perms & ~deny) | allow
    mine = next((o for o in overwrites if o.kind is OverwriteKind.MEMBER and o.id == member_id), None)
    if mine is not None:
        perms = (perms & ~mine.deny) | mine.allow
    return perms


def apply_implicit(perms: int, kind: ChannelKind, *, timed_out: bool = False) -> int:
    """Discord's implicit rules for a channel (see the module docstring)."""
    if kind is ChannelKind.TEXT:
        if not perms & SEND_MESSAGES:
            perms &= ~NEEDS_SEND
        if not perms & VIEW_CHANNEL:
            perms &= ~ALL_CHANNEL
        perms &= ~VOICE
    elif kind is ChannelKind.VOICE:
        if not perms & SEND_MESSAGES:
            perms &= ~NEEDS_SEND
        if not perms & VIEW_CHANNEL:
            perms &= ~ALL_CHANNEL
        if not perms & CONNECT:
            perms &= ~NEEDS_CONNECT
    if timed_out:
        perms &= TIMEOUT_KEEPS
    return perms


def channel_permissions(
    *,
    guild_id: int,
    owner_id: int | None,
    member_id: int,
    member_role_ids: Iterable[int],
    role_permissions: Mapping[int, int],
    overwrites: Sequence[Overwrite],
    kind: ChannelKind = ChannelKind.TEXT,
    timed_out: bool = False,
) -> int:
    """A member's effective permissions in one channel.

    ``role_permissions`` maps every role id of the guild (including @everyone, whose id is the
    guild id) to its permission integer; roles the member has that are missing from it count as 0.
    """
    roles = [r for r in member_role_ids if r != guild_id]
    base = base_permissions(
        member_id=member_id,
        owner_id=owner_id,
        everyone_permissions=role_permissions.get(guild_id, 0),
        role_permissions=(role_permissions.get(r, 0) for r in roles),
    )
    if base == ALL:
        # Owner and Administrator bypass overwrites and timeouts; only the text-channel rule
        # (no voice permission in a text channel) still shapes what is reported.
        return apply_implicit(ALL, kind)
    perms = apply_overwrites(
        base, guild_id=guild_id, member_id=member_id, member_role_ids=roles, overwrites=overwrites
    )
    return apply_implicit(perms, kind, timed_out=timed_out)


# discord.py's canonical name for bit 10 is ``read_messages``; Discord and people say View Channel.
_DISPLAY_NAMES = {"read_messages": "view_channel"}


def permission_names(value: int) -> list[str]:
    """The names of the set bits, in discord.py's words (``manage_roles``, ``view_channel`` ...)."""
    perms = discord.Permissions(value)
    return [_DISPLAY_NAMES.get(name, name) for name, on in perms if on]


def names_to_value(names: Iterable[str]) -> int:
    return discord.Permissions(**dict.fromkeys(names, True)).value


# --------------------------------------------------------------------- discord.py adapters


def channel_kind_of(channel: discord.abc.GuildChannel) -> ChannelKind:
    if isinstance(channel, discord.CategoryChannel):
        return ChannelKind.CATEGORY
    if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
        return ChannelKind.VOICE
    return ChannelKind.TEXT


def overwrites_of(channel: discord.abc.GuildChannel) -> list[Overwrite]:
    out: list[Overwrite] = []
    for target, ow in channel.overwrites.items():
        allow, deny = ow.pair()
        kind = OverwriteKind.ROLE if isinstance(target, discord.Role) else OverwriteKind.MEMBER
        out.append(Overwrite(id=target.id, kind=kind, allow=allow.value, deny=deny.value))
    return out


def role_permissions_of(guild: discord.Guild) -> dict[int, int]:
    return {role.id: role.permissions.value for role in guild.roles}


def member_guild_permissions(member: discord.Member) -> int:
    guild = member.guild
    roles = role_permissions_of(guild)
    return guild_permissions(
        member_id=member.id,
        owner_id=guild.owner_id,
        everyone_permissions=roles.get(guild.id, 0),
        role_permissions=(roles.get(r.id, 0) for r in member.roles if r.id != guild.id),
        timed_out=member.is_timed_out(),
    )


def member_channel_permissions(member: discord.Member, channel: discord.abc.GuildChannel) -> int:
    guild = channel.guild
    return channel_permissions(
        guild_id=guild.id,
        owner_id=guild.owner_id,
        member_id=member.id,
        member_role_ids=[r.id for r in member.roles],
        role_permissions=role_permissions_of(guild),
        overwrites=overwrites_of(channel),
        kind=channel_kind_of(channel),
        timed_out=member.is_timed_out(),
    )
