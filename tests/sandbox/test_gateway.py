"""Gateway behaviour: resume with replay, op 7 reconnect, invalid session, restart with a fresh IDENTIFY."""

from __future__ import annotations

import asyncio

from tests.helpers import TinyBot


async def _member_update_for(bot: TinyBot, user_id: int, timeout: float = 3.0):
    while True:
        before, after = await asyncio.wait_for(bot.member_updates.get(), timeout)
        if after.id == user_id:
            return before, after


async def test_resume_replays_missed_events(sandbox, world, tinybot):
    g, alice, deployers = world["g"], world["alice"], world["deployers"]
    identifies = sandbox.gateway.identifies
    await sandbox.disconnect_gateway(code=4000, hold=True)
    assert not sandbox.connected.is_set()
    await sandbox.admin.add_role(g, alice, deployers, reason="by hand")  # happens while the bot is away
    sandbox.release_gateway()
    await asyncio.wait_for(tinybot.resumed.wait(), 5)
    _, after = await _member_update_for(tinybot, alice.id)
    assert deployers.id in [r.id for r in after.roles]
    entry = await asyncio.wait_for(tinybot.audit_entries.get(), 2)
    assert entry.reason == "by hand" and entry.user.id == g.owner.id
    assert sandbox.gateway.identifies == identifies and sandbox.gateway.resumes == 1
    assert sandbox.connected.is_set()
    # interactions still work on the resumed session
    out = await sandbox.slash(g, alice, "ping")
    assert out.content == "Pong"


async def test_reconnect_opcode(sandbox, world, tinybot):
    g, bob, deployers = world["g"], world["bob"], world["deployers"]
    await sandbox.disconnect_gateway(reconnect_op=True)
    await sandbox.admin.remove_role(g, bob, deployers)
    await asyncio.wait_for(tinybot.resumed.wait(), 5)
    _, after = await _member_update_for(tinybot, bob.id)
    assert deployers.id not in [r.id for r in after.roles]
    assert sandbox.gateway.resumes == 1


async def test_invalid_session_then_identify(sandbox, world, tinybot):
    identifies = sandbox.gateway.identifies
    await sandbox.disconnect_gateway(code=4000, hold=True)
    sandbox.invalidate_sessions()
    sandbox.release_gateway()
    for _ in range(300):
        if sandbox.gateway.identifies > identifies and sandbox.connected.is_set():
            break
        await asyncio.sleep(0.01)
    assert sandbox.gateway.identifies == identifies + 1
    out = await sandbox.slash(world["g"], world["alice"], "ping")
    assert out.content == "Pong"


async def test_restart_identifies_again(sandbox, world):
    first = TinyBot(sandbox)
    await first.start()
    await first.stop()
    for _ in range(100):
        if not sandbox.connected.is_set():
            break
        await asyncio.sleep(0.01)
    assert not sandbox.connected.is_set()
    second = TinyBot(sandbox)
    await second.start(sync=False)  # commands are still registered from the first run
    try:
        assert sandbox.gateway.identifies == 2
        assert second.client.get_guild(world["g"].id).get_member(world["alice"].id) is not None
        out = await sandbox.slash(world["g"], world["alice"], "ping")
        assert out.content == "Pong"
    finally:
        await second.stop()


async def test_several_guilds_and_intents(sandbox, world):
    other = sandbox.create_guild("globex")
    other.add_member("dave")
    import discord

    bot = TinyBot(sandbox, intents=discord.Intents.default())  # no members intent
    await bot.start(sync=False)
    try:
        guilds = {g.id for g in bot.client.guilds}
        assert guilds == {world["g"].id, other.id}
        # without the members intent: only the bot itself is sent, member updates are not
        assert bot.client.get_guild(other.id).get_member(other.member("dave").id) is None
        await sandbox.admin.add_role(world["g"], world["alice"], world["deployers"])
        await asyncio.sleep(0.05)
        assert bot.member_updates.empty()
        # a guild created while connected arrives as GUILD_CREATE
        third = sandbox.create_guild("initech")
        for _ in range(100):
            if bot.client.get_guild(third.id):
                break
            await asyncio.sleep(0.01)
        assert bot.client.get_guild(third.id) is not None
    finally:
        await bot.stop()


async def test_member_and_webhook_messages_reach_guild_messages_sessions(sandbox, world, tinybot):
    """Admin.post / post_as_webhook: MESSAGE_CREATE as Discord sends it (a webhook's author is the
    webhook itself, with webhook_id set), only to sessions with the Guild Messages intent."""
    g, alice, approvals = world["g"], world["alice"], world["approvals"]
    hook = await sandbox.admin.create_webhook(g, approvals, "ci-hook")
    waiting = asyncio.ensure_future(
        tinybot.client.wait_for("message", timeout=3, check=lambda m: m.author.id == alice.id)
    )
    await sandbox.admin.post(g, approvals, alice, "hello")
    said = await waiting
    assert said.webhook_id is None and said.guild.id == g.id and said.channel.id == approvals.id
    waiting = asyncio.ensure_future(
        tinybot.client.wait_for("message", timeout=3, check=lambda m: m.webhook_id is not None)
    )
    await sandbox.admin.post_as_webhook(g, hook, "build green")
    posted = await waiting
    assert posted.webhook_id == hook.id and posted.author.id == hook.id and posted.author.bot
    assert posted.content == "build green"

    import discord

    deaf = TinyBot(sandbox, intents=discord.Intents(guilds=True))  # no Guild Messages
    await deaf.start(sync=False)
    try:
        heard = asyncio.ensure_future(deaf.client.wait_for("message", timeout=0.3))
        await sandbox.admin.post(g, approvals, alice, "unheard")
        try:
            await heard
            raise AssertionError("a session without Guild Messages received MESSAGE_CREATE")
        except TimeoutError:
            pass
    finally:
        await deaf.stop()
