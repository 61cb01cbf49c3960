"""End-to-end fixtures: the real WardenBot connected to the sandbox through discord.py."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import pytest

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
