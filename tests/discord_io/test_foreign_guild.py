"""A process acting for a guild on another process's shard has no cache of it: it works by id over REST.

The client here is logged in (REST) but never connects to the gateway, exactly what a sharded
process knows of a guild outside its shards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import discord
import pytest

from bot.db.models import AccessRequest, GuildPin
from bot.discord_io.notifier import Notifier, governance_resolver
from bot.discord_io.ops import DiscordOps, GrantTarget
from bot.policy import GuildDirectory, load_policy
from sandbox import SandboxDiscord
from sandbox.harness import ACME, EXAMPLE_CONFIG, build_guild


@pytest.fixture
async def rest_only() -> AsyncIterator[tuple[SandboxDiscord, discord.Client]]:
    async with SandboxDiscord() as sb:
        sb.point_discord_here()
        build_guild(sb, ACME)
        client = discord.Client(intents=discord.Intents(guilds=True))
        await client.login(sb.token)
        try:
            assert list(client.guilds) == []  # no gateway: no cache
            yield sb, client
        finally:
            await client.close()
    sb.conformance.assert_ok()


async def test_narratives_go_to_the_governance_channel_by_id(rest_only) -> None:
    sb, client = rest_only
    guild = next(iter(sb.guilds.values()))
    # The process whose shard holds acme pinned [guild.acme] to it; this one reads that pin.
    pin = GuildPin(key="acme", guild_id=guild.id, guild_name="acme", pinned_at=dt.datetime.now(dt.UTC))

    async def stored_pins() -> list[GuildPin]:
        return [pin]

    directory = GuildDirectory(load_policy(EXAMPLE_CONFIG), stored_pins)
    assert await governance_resolver(client, GuildDirectory(load_policy(EXAMPLE_CONFIG)))(guild.id) is None
    channel = await governance_resolver(client, directory)(guild.id)
    assert channel is not None
    await channel.send("narrative")
    assert [m.text for m in sb.messages(guild.channel("governance"))] == ["narrative"]


async def test_grants_are_applied_and_removed_by_id(rest_only) -> None:
    sb, client = rest_only
    guild = next(iter(sb.guilds.values()))
    alice, role = guild.member("alice"), guild.role("deployers")
    ops = DiscordOps(client)
    target = GrantTarget(guild.id, alice.id, "role", role.id)
    await ops.apply(target, "Warden grant #1 applied")
    assert alice.has_role(role)
    await ops.remove(target, "Warden grant #1 expired")
    assert not alice.has_role(role)


async def test_approver_reminder_is_posted_by_the_process_that_claimed_it(rest_only) -> None:
    sb, client = rest_only
    guild = next(iter(sb.guilds.values()))
    approvals = guild.channel("approvals")
    card = await client.get_partial_messageable(approvals.id).send("Access request #7")
    now = dt.datetime.now(dt.UTC)
    req = AccessRequest(
        id=7,
        guild_id=guild.id,
        scope_id="deploy",
        requester_id=guild.member("alice").id,
        subject_id=guild.member("alice").id,
        approvals_required=2,
        duration_seconds=3600,
        created_at=now,
        pending_until=now + dt.timedelta(hours=2),
        card_channel_id=approvals.id,
        card_message_id=card.id,
    )
    req.votes = []
    await Notifier(client, GuildDirectory(load_policy(EXAMPLE_CONFIG)), None).remind_approvers(req)  # type: ignore[arg-type]
    reminder = sb.messages(approvals)[-1]
    assert "Reminder: request #7" in reminder.text and "2 approvals" in reminder.text
