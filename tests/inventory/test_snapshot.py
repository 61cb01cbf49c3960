"""The discord.py adapter: a snapshot of a real discord.py guild gives discord.py's own permissions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest

from bot.inventory.snapshot import bot_reach, snapshot_from_discord
from tests.helpers import InventoryGuild as fx


@pytest.fixture
async def guild() -> AsyncIterator[discord.Guild]:
    http = discord.http.HTTPClient(loop=asyncio.get_running_loop())
    try:
        yield fx.build_guild(http)
    finally:
        await http.close()


def _user(uid: int, bot: bool = False) -> dict[str, object]:
    return {"id": str(uid), "username": f"u{uid}", "discriminator": "0", "avatar": None, "bot": bot}


async def test_snapshot_reach_matches_discord_py(guild: discord.Guild) -> None:
    hook = discord.Webhook.from_state(
        {
            "id": "9001",
            "type": 1,
            "name": "deploys",
            "channel_id": str(fx.GENERAL),
            "guild_id": str(fx.GUILD_ID),
            "user": _user(fx.OWNER_ID),
            "token": "not-used",
        },
        guild._state,
    )
    integration = discord.BotIntegration(
        data={
            "id": "9100",
            "name": "Alice app",
            "type": "discord",
            "enabled": True,
            "account": {"id": "77", "name": "acct"},
            "user": _user(fx.OWNER_ID),
            "scopes": ["bot", "applications.commands"],
            "application": {
                "id": "77",
                "name": "Alice app",
                "icon": None,
                "description": "",
                "summary": "",
                "bot": _user(fx.ALICE_BOT, True),
            },
        },  # type: ignore[typeddict-item]
        guild=guild,
    )
    snap = snapshot_from_discord(guild, webhooks=[hook], integrations=[integration], added_by={fx.BOB_BOT: 5})
    assert {b.id for b in snap.bots} == {m.id for m in guild.members if m.bot}
    for bot in snap.bots:
        member = guild.get_member(bot.id)
        assert member is not None
        reach = bot_reach(snap, bot)
        assert reach.permissions == member.guild_permissions.value
        for channel in guild.channels:
            if isinstance(channel, discord.CategoryChannel):
                assert channel.id not in reach.channels
                continue
            assert reach.channels[channel.id] == channel.permissions_for(member).value, (bot.id, channel.id)
    by_id = {b.id: b for b in snap.bots}
    assert by_id[fx.BOB_BOT].added_by == 5
    assert by_id[fx.ALICE_BOT].added_by == fx.OWNER_ID  # from the integration that added it
    assert snap.webhooks[0].creator_id == fx.OWNER_ID and snap.webhooks[0].channel_id == fx.GENERAL
    assert snap.integrations[0].bot_id == fx.ALICE_BOT
    assert snap.integrations[0].scopes == ("bot", "applications.commands")
