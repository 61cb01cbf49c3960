"""End-to-end fixtures: the real WardenBot connected to the sandbox through discord.py."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import pytest

from bot.inventory.service import InventoryService
from bot.inventory.snapshot import snapshot_from_discord
from bot.policy import load_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld


@pytest.fixture
def policy():
    return load_policy(EXAMPLE_CONFIG)


@pytest.fixture
def acme_spec():
    return copy.deepcopy(ACME)


@pytest.fixture
async def world(policy, acme_spec, db_url, clock) -> AsyncIterator[SandboxWorld]:
    """The acme server from config.example.toml, with Warden running and connected."""
    async with SandboxWorld(policy, database_url=db_url, clock=clock) as w:
        w.add_guild(acme_spec)
        await w.start_bot()
        yield w
        w.sb.conformance.assert_ok()


@pytest.fixture
def record_owner(world):
    """Record in Warden's inventory that a member owns a bot (what an admin's /warden owner set does)."""

    async def record(bot_name: str, owner_name: str) -> None:
        g = world.guild
        bot, owner = g.member(bot_name), g.member(owner_name)
        inventory = InventoryService(world.bot.session_factory, world.clock)
        await inventory.refresh(snapshot_from_discord(world.bot.get_guild(g.id), taken_at=world.clock.now()))
        item = next(i for i in await inventory.items(g.id) if i.external_id == str(bot.id))
        await inventory.set_owner(g.id, item.id, owner.id, actor_id=g.owner.id)

    return record
