"""Effective permissions match Discord's computation (discord.py's ``permissions_for``) and hand-computed values."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest

from bot.inventory import permissions as perms
from bot.inventory.permissions import ChannelKind, Overwrite, OverwriteKind
from tests.helpers import InventoryGuild as fx

P = discord.Permissions


@pytest.fixture
async def guild() -> AsyncIterator[discord.Guild]:
    http = discord.http.HTTPClient(loop=asyncio.get_running_loop())
    try:
        yield fx.build_guild(http)
    finally:
        await http.close()


def _names(value: int) -> set[str]:
    return set(perms.permission_names(value))


async def test_every_member_in_every_channel_matches_discord_py(guild: discord.Guild) -> None:
    checked = 0
    for member in guild.members:
        for channel in guild.channels:
            ours = perms.member_channel_permissions(member, channel)
            theirs = channel.permissions_for(member).value
            assert ours == theirs, (
                f"member {member.id} in channel {channel.id}: "
                f"extra {_names(ours & ~theirs)}, missing {_names(theirs & ~ours)}"
            )
            checked += 1
        assert perms.member_guild_permissions(member) == member.guild_permissions.value
    assert checked == len(fx.MEMBER_ROLES) * len(fx.CHANNELS)


async def test_hand_computed_private_channel(guild: discord.Guild) -> None:
    # Bob: DEV lets him see; MUTED denies send and attach; his own overwrite gives send back,
    # so attach stays denied, embed links (from DEV) stays; mention_everyone allowed by DEV's overwrite.
    bob = guild.get_member(fx.BOB_BOT)
    private = guild.get_channel(fx.PRIVATE)
    assert bob is not None and private is not None
    got = _names(perms.member_channel_permissions(bob, private))
    assert {"view_channel", "send_messages", "embed_links", "mention_everyone", "manage_webhooks"} <= got
    assert "attach_files" not in got
    assert "connect" not in got  # text channels carry no voice permission
    # Plain bot: @everyone overwrite hides the channel → nothing at all there.
    plain = guild.get_member(fx.PLAIN_BOT)
    assert plain is not None
    assert perms.member_channel_permissions(plain, private) == 0
    # Alice: DEV shows it; her member overwrite takes manage_messages (from MOD) away.
    alice = guild.get_member(fx.ALICE_BOT)
    assert alice is not None
    got = _names(perms.member_channel_permissions(alice, private))
    assert "view_channel" in got and "manage_messages" not in got and "kick_members" in got


async def test_hand_computed_role_overwrites_combine_allow_wins(guild: discord.Guild) -> None:
    # Alice has MOD (allow send) and DEV (deny send): role overwrites combine, allow wins.
    alice = guild.get_member(fx.ALICE_BOT)
    announce = guild.get_channel(fx.ANNOUNCE)
    assert alice is not None and announce is not None
    got = _names(perms.member_channel_permissions(alice, announce))
    assert "send_messages" in got
    assert "embed_links" not in got  # DEV's deny, nothing allows it back
    # Bob has only DEV: send denied → implicit loss of mention/attach/embed/tts.
    bob = guild.get_member(fx.BOB_BOT)
    assert bob is not None
    got = _names(perms.member_channel_permissions(bob, announce))
    assert not got & {"send_messages", "attach_files", "embed_links", "mention_everyone", "send_tts_messages"}


async def test_administrator_implies_all_even_against_overwrites(guild: discord.Guild) -> None:
    admin = guild.get_member(fx.ADMIN_BOT)
    announce = guild.get_channel(fx.ANNOUNCE)
    assert admin is not None and announce is not None
    # A member overwrite denies view to the admin bot; Administrator bypasses it.
    assert perms.member_channel_permissions(admin, announce) == perms.ALL & ~perms.VOICE
    voice = guild.get_channel(fx.VOICE_CH)
    assert voice is not None
    assert perms.member_channel_permissions(admin, voice) == perms.ALL
    owner = guild.get_member(fx.OWNER_ID)
    assert owner is not None
    assert perms.member_guild_permissions(owner) == perms.ALL


async def test_voice_without_connect_loses_voice_and_manage(guild: discord.Guild) -> None:
    bob = guild.get_member(fx.BOB_BOT)
    voice = guild.get_channel(fx.VOICE_CH)
    assert bob is not None and voice is not None
    got = _names(perms.member_channel_permissions(bob, voice))
    assert "connect" not in got and "speak" not in got and "manage_channels" not in got
    assert "view_channel" in got


async def test_timed_out_member_keeps_only_view_and_history(guild: discord.Guild) -> None:
    member = guild.get_member(fx.TIMED_OUT_BOT)
    general = guild.get_channel(fx.GENERAL)
    assert member is not None and general is not None
    assert _names(perms.member_channel_permissions(member, general)) == {
        "view_channel",
        "read_message_history",
    }


def test_pure_function_on_plain_data() -> None:
    guild_id, member = 10, 20
    roles = {guild_id: P(view_channel=True, send_messages=True).value, 30: P(manage_roles=True).value}
    overwrites = [
        Overwrite(guild_id, OverwriteKind.ROLE, deny=P(view_channel=True).value),
        Overwrite(30, OverwriteKind.ROLE, allow=P(view_channel=True).value),
        Overwrite(
            member, OverwriteKind.MEMBER, deny=P(send_messages=True).value, allow=P(attach_files=True).value
        ),
    ]
    got = perms.channel_permissions(
        guild_id=guild_id,
        owner_id=1,
        member_id=member,
        member_role_ids=[30],
        role_permissions=roles,
        overwrites=overwrites,
    )
    # attach allowed by the member overwrite but send is denied → attach is implicitly gone too.
    assert _names(got) == {"view_channel", "manage_roles"}
    # Without the role, the @everyone deny hides the channel: no channel permission remains, but
    # guild-wide ones (none here) would.
    assert (
        perms.channel_permissions(
            guild_id=guild_id,
            owner_id=1,
            member_id=member,
            member_role_ids=[],
            role_permissions=roles,
            overwrites=overwrites,
        )
        == 0
    )
    kick = P(kick_members=True).value
    assert perms.apply_implicit(kick, ChannelKind.TEXT) == kick
    assert perms.names_to_value(["kick_members"]) == kick
