"""What people read: listings, pings only where the policy asks, and the apology path."""

from __future__ import annotations

import asyncio
import logging

from bot.discord_io import replies
from bot.discord_io.replies import APOLOGY
from bot.policy import load_policy, parse_policy
from sandbox.harness import EXAMPLE_CONFIG, SandboxWorld
from tests.helpers import card_in, request


async def test_mine_lists_pending_requests_and_active_grants(world):
    g = world.guild
    out = await world.sb.slash(g, g.member("alice"), "jit mine")
    assert "no pending requests and no active grants" in out.text
    await request(world, "alice")
    out = await world.sb.slash(g, g.member("alice"), "jit mine")
    assert out.ephemeral and "Pending requests" in out.text and "#1 `deploy` for 2h" in out.text


async def test_mine_answers_in_one_round_trip_and_defers_only_a_slow_read(world, monkeypatch):
    """What a person waits for: a quick listing is the first response itself (no "thinking…" then a
    follow-up: one round trip to Discord instead of two); a read slower than
    ``ANSWER_AT_ONCE_WITHIN`` is deferred first, so Discord's 3-second deadline is never missed."""
    g = world.guild
    out = await world.sb.slash(g, g.member("alice"), "jit mine")
    assert not out.deferred and out.ephemeral and "no pending requests" in out.text
    quick = world.bot.services.requests.mine

    async def slow(member):
        await asyncio.sleep(replies.ANSWER_AT_ONCE_WITHIN + 0.2)
        return await quick(member)

    monkeypatch.setattr(world.bot.services.requests, "mine", slow)
    out = await world.sb.slash(g, g.member("alice"), "jit mine")
    assert out.deferred and out.ephemeral and "no pending requests" in out.text


async def test_unexpected_errors_get_an_apology_and_a_log_line(world, monkeypatch, caplog):
    g = world.guild

    async def broken(member):
        raise RuntimeError("boom")

    monkeypatch.setattr(world.bot.services.requests, "mine", broken)
    with caplog.at_level(logging.ERROR, logger=replies.log.name):  # the one error path's logger
        out = await world.sb.slash(g, g.member("alice"), "jit mine")
    assert out.ephemeral and out.text == APOLOGY
    record = next(r for r in caplog.records if r.name == replies.log.name)
    assert record.guild_id == g.id and record.command == "jit mine"


async def test_ping_role_is_the_only_mention_that_can_ping(db_url, clock, acme_spec):
    import tomllib

    data = tomllib.loads(EXAMPLE_CONFIG.read_text())
    data["guild"]["acme"]["ping_role"] = "sec-leads"
    policy = parse_policy(data, "test")
    async with SandboxWorld(policy, database_url=db_url, clock=clock) as world:
        world.add_guild(acme_spec)
        await world.start_bot()
        await request(world, "alice")
        card = card_in(world, 1)
        g = world.guild
        assert card.content.startswith(g.role("sec-leads").mention)
        post = next(  # the card's post (the requester's answer, sent before it, pings nobody)
            r
            for r in world.sb.request_log
            if r.method == "POST" and r.path == f"/channels/{card.channel_id}/messages" and r.body
        )
        assert post.body["allowed_mentions"]["roles"] == [str(g.role("sec-leads").id)] or post.body[
            "allowed_mentions"
        ]["roles"] == [g.role("sec-leads").id]
        assert post.body["allowed_mentions"]["parse"] == []
    assert load_policy(EXAMPLE_CONFIG).guilds[0].ping_role is None
