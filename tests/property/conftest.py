"""Fixtures for the sandbox-driven properties: the acme server with Warden running.

The policy is the example with the abuse guards opened (no cooldown, many pending requests), so
examples after the first reach the deeper checks instead of stopping at "too soon".
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import AsyncIterator

import pytest

from bot.policy import Policy, parse_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld


@pytest.fixture
def open_policy() -> Policy:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["guild"]["acme"] |= {"request_cooldown": "0s", "max_pending_per_member": 100}
    return parse_policy(data, "property policy")


@pytest.fixture
async def world(open_policy, db_url, clock) -> AsyncIterator[SandboxWorld]:
    async with SandboxWorld(open_policy, database_url=db_url, clock=clock) as w:
        w.add_guild(copy.deepcopy(ACME))
        await w.start_bot()
        yield w
        w.sb.conformance.assert_ok()
