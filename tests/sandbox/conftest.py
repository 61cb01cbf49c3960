"""Fixtures: a started sandbox (conformance asserted on teardown) and a tiny real discord.py bot."""

from __future__ import annotations

import pytest

from sandbox import SandboxDiscord
from tests.helpers import TinyBot


@pytest.fixture
async def sandbox():
    """A running sandbox with discord.py pointed at it; fails the test on any conformance violation."""
    async with SandboxDiscord() as sb:
        sb.point_discord_here()
        yield sb
    sb.conformance.assert_ok()


@pytest.fixture
async def world(sandbox):
    """A guild with roles, members and channels."""
    g = sandbox.create_guild("acme")
    deployers = g.create_role("deployers", permissions=["manage_messages"])
    admins = g.create_role("admins", permissions=["administrator"], position=len(g.roles))  # above Warden
    alice = g.add_member("alice")
    bob = g.add_member("bob", roles=[deployers])
    carol = g.add_member("carol", dms_open=False)
    approvals = g.create_channel("approvals")
    return {
        "g": g,
        "deployers": deployers,
        "admins": admins,
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "approvals": approvals,
    }


@pytest.fixture
async def tinybot(sandbox, world):
    bot = TinyBot(sandbox)
    await bot.start()
    yield bot
    await bot.stop()
