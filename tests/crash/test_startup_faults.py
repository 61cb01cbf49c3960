"""Discord failing while Warden registers its slash commands must not keep Warden from starting:
grants fall due whatever the command endpoint says. Found by the soak (a restart met a 503)."""

from __future__ import annotations

import datetime as dt
import logging

from bot.policy import load_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld
from tests.helpers import card_in, request

COMMANDS = "/applications/{application_id}/commands"


async def test_a_grant_expires_although_command_sync_fails_at_start_up(db_url, clock, caplog):
    async with SandboxWorld(load_policy(EXAMPLE_CONFIG), database_url=db_url, clock=clock) as world:
        g = world.add_guild(ACME)
        await world.start_bot()
        await request(world, "alice", duration="1h")
        card = card_in(world, 1)
        await world.sb.click(g.member("bob"), card, "Approve")
        await world.sb.click(g.member("carol"), card, "Approve")
        assert g.member("alice").has_role("deployers")
        await world.stop_bot()
        world.sb.faults.fail("PUT", COMMANDS, status=503, times=None)  # Discord's command API is down
        world.clock.advance(dt.timedelta(hours=2))
        with caplog.at_level(logging.ERROR):
            await world.start_bot()  # returns once the start-up sweep has run
        assert not g.member("alice").has_role("deployers")
        assert "could not register the slash commands (Discord error 503" in caplog.text
        world.sb.faults.clear()
