"""Injected faults against discord.py's own retry logic."""

from __future__ import annotations

import asyncio
import time
import types

import discord
import discord.http


class _FastSleep(types.ModuleType):
    """``asyncio`` as seen by discord.http, with its retry back-off sleeps cut to 10 ms."""

    def __init__(self) -> None:
        super().__init__("asyncio")
        self.sleeps: list[float] = []

    def __getattr__(self, name):
        return getattr(asyncio, name)

    async def sleep(self, seconds, result=None):
        self.sleeps.append(seconds)
        return await asyncio.sleep(min(seconds, 0.01), result)


ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


def _attempts(sb, template):
    return [r for r in sb.request_log if r.template == template]


async def test_500_twice_then_success(sandbox, world, tinybot, monkeypatch):
    fast = _FastSleep()
    monkeypatch.setattr(discord.http, "asyncio", fast)
    g, alice, deployers = world["g"], world["alice"], world["deployers"]
    sandbox.faults.fail(method="PUT", path=ROLE_ROUTE, status=500, times=2)
    member = tinybot.client.get_guild(g.id).get_member(alice.id)
    await member.add_roles(discord.Object(deployers.id))
    attempts = _attempts(sandbox, ROLE_ROUTE)
    assert [a.status for a in attempts] == [500, 500, 204]
    assert fast.sleeps == [1, 3]  # discord.py's back-off: 1 + tries * 2
    assert alice.has_role(deployers)


async def test_429_is_waited_out(sandbox, world, tinybot):
    g, alice, deployers = world["g"], world["alice"], world["deployers"]
    path = f"/guilds/{g.id}/members/{alice.id}/roles/{deployers.id}"  # a concrete path works too
    sandbox.faults.fail(method="PUT", path=path, status=429, times=1, retry_after=0.2)
    member = tinybot.client.get_guild(g.id).get_member(alice.id)
    started = time.monotonic()
    await member.add_roles(discord.Object(deployers.id))
    assert time.monotonic() - started >= 0.2
    assert [a.status for a in _attempts(sandbox, ROLE_ROUTE)] == [429, 204]
    assert alice.has_role(deployers)


async def test_fault_until_cleared_and_delay(sandbox, world, tinybot):
    g, alice, deployers = world["g"], world["alice"], world["deployers"]
    member = tinybot.client.get_guild(g.id).get_member(alice.id)
    sandbox.faults.fail(
        method="PUT", path=ROLE_ROUTE, status=403, times=None, code=50013, message="Missing Permissions"
    )
    for _ in range(2):
        try:
            await member.add_roles(discord.Object(deployers.id))
        except discord.Forbidden as e:
            assert e.code == 50013
    sandbox.faults.clear()
    sandbox.faults.delay(method="PUT", path=ROLE_ROUTE, seconds=0.3)
    started = time.monotonic()
    await member.add_roles(discord.Object(deployers.id))
    assert time.monotonic() - started >= 0.3
    assert alice.has_role(deployers)


async def test_enforced_rate_limit(sandbox, world, tinybot):
    sandbox.rate_limits = True
    sandbox.rate_limit_overrides["/channels/{channel_id}/messages"] = (2, 0.3)
    channel = tinybot.client.get_channel(world["approvals"].id)
    for i in range(4):
        await channel.send(f"m{i}")
    statuses = [r.status for r in _attempts(sandbox, "/channels/{channel_id}/messages")]
    assert statuses.count(200) == 4  # discord.py honoured the headers / 429s and got everything through
    assert [m.content for m in sandbox.messages(world["approvals"])] == ["m0", "m1", "m2", "m3"]


def test_chaos_fails_a_share_of_mutations_only() -> None:
    from sandbox.faults import Faults

    faults = Faults()
    rule = faults.chaos(0.2, seed=3)
    role = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"
    statuses = set()
    for _ in range(2000):
        hit = faults.take("fail", "PUT", role, "/guilds/1/members/2/roles/3")
        if hit is not None:
            statuses.add(hit.status)  # the status of this failure (the rule draws one each time)
    assert 300 < rule.hits < 500 and rule.seen == 2000  # a fifth, give or take
    assert statuses == {500, 502, 503, 429}
    assert faults.take("fail", "GET", "/guilds/{guild_id}", "/guilds/1") is None
    callback = "/interactions/{interaction_id}/{interaction_token}/callback"
    assert all(faults.take("fail", "POST", callback, "/interactions/1/t/callback") is None for _ in range(50))
    assert rule.seen == 2000  # reads and interaction answers are not counted as mutations
