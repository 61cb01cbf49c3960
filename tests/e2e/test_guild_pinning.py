"""A policy table keyed by a guild name is pinned to one guild id at first sight (issue 7, defect 6).

Afterwards another server with the same name never gets the policy: its members cannot request,
the log and ``/warden doctor`` say why and how to fix it. A rename of the pinned guild keeps the
policy; two same-named guilds seen at once pin neither.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from sqlalchemy import func, select

from bot.db.models import AccessRequest, Grant, GuildPin, LedgerEntry
from sandbox.harness import ACME, SandboxWorld


async def count(world, model) -> int:
    async with world.bot.session_factory() as s:
        return await s.scalar(select(func.count()).select_from(model))


async def pins(world) -> list[tuple[str, int, int | None]]:
    async with world.bot.session_factory() as s:
        rows = (await s.execute(select(GuildPin))).scalars().all()
    return [(p.key, p.guild_id, p.confirmed_by) for p in rows]


async def join(world, spec):
    """A second server (another owner's) adds Warden while it runs: GUILD_CREATE → on_guild_join."""
    guild = world.add_guild(spec)
    await world.eventually(lambda: world.bot.get_guild(guild.id) is not None, what="the bot sees the guild")
    await world.eventually(lambda: world.bot.services.guilds.name(guild.id) == guild.name, what="bound")
    return guild


async def assert_no_policy(world, guild) -> None:
    """The on-call member (auto-approved for deploy where the policy applies) gets nothing, nothing is written."""
    dave = guild.member("dave")
    out = await world.sb.slash(guild, dave, "jit request", scope="deploy", duration="30m", reason="hotfix")
    assert out.ephemeral
    assert "This server has no Warden policy" in out.text, out.text
    assert not dave.has_role("deployers")
    choices = await world.sb.autocomplete(guild, dave, "jit request", focused="scope", scope="")
    assert choices == []
    assert await count(world, AccessRequest) == 0
    assert await count(world, Grant) == 0


async def assert_policy(world, guild) -> None:
    dave = guild.member("dave")
    out = await world.sb.slash(guild, dave, "jit request", scope="deploy", duration="30m", reason="hotfix")
    assert dave.has_role("deployers"), out.text


async def test_a_second_server_with_the_same_name_gets_no_policy(world, caplog):
    acme = world.guild
    assert await pins(world) == [("acme", acme.id, None)]
    caplog.set_level(logging.WARNING, logger="bot.client")
    impostor = await join(world, copy.deepcopy(ACME))
    assert impostor.id != acme.id and impostor.name == acme.name
    await assert_no_policy(world, impostor)
    assert f"pinned to another server, 'acme' (id {acme.id})" in caplog.text
    assert f'[guild."{impostor.id}"]' in caplog.text  # the log says how to fix it
    out = await world.sb.slash(impostor, impostor.owner, "warden doctor")
    assert f"pinned to another server, 'acme' (id {acme.id})" in out.text, out.text
    assert f'[guild."{impostor.id}"]' in out.text
    # Restarted with both in sight, the pin (in the database) still decides: no ambiguity.
    await world.restart_bot()
    await assert_no_policy(world, impostor)
    await assert_policy(world, acme)
    assert await pins(world) == [("acme", acme.id, None)]


async def test_a_rename_of_the_pinned_server_keeps_its_policy(world):
    acme = world.guild
    await world.sb.admin.rename_guild(acme, "Acme Production")
    await world.eventually(lambda: world.bot.get_guild(acme.id).name == "Acme Production", what="renamed")
    await assert_policy(world, acme)
    out = await world.sb.slash(acme, acme.owner, "warden doctor")
    assert "[guild.acme] is pinned to this server" in out.text and "not confirmed yet" in out.text, out.text
    # The name is free now, but the table stays pinned by id: a new server called "acme" gets nothing.
    impostor = await join(world, copy.deepcopy(ACME))
    assert world.bot.services.guilds.get(impostor.id) is None
    assert await pins(world) == [("acme", acme.id, None)]


async def test_two_same_named_servers_at_first_sight_pin_neither(policy, db_url, clock, caplog):
    caplog.set_level(logging.WARNING, logger="bot.client")
    async with SandboxWorld(policy, database_url=db_url, clock=clock) as world:
        first, second = world.add_guild(copy.deepcopy(ACME)), world.add_guild(copy.deepcopy(ACME))
        await world.start_bot()
        assert await pins(world) == []
        for guild in (first, second):
            await assert_no_policy(world, guild)
            out = await world.sb.slash(guild, guild.owner, "warden doctor")
            assert "2 servers are named 'acme'" in out.text and "pinned to none of them" in out.text, out.text
        ids = sorted((first.id, second.id))
        assert f"2 servers are named 'acme' (ids {ids[0]}, {ids[1]})" in caplog.text
        out = await world.sb.slash(first, first.owner, "warden pin")
        assert "Nothing to confirm" in out.text and "pinned to none of them" in out.text, out.text
        assert await pins(world) == []
        world.sb.conformance.assert_ok()


async def test_a_server_admin_confirms_the_pin(world):
    acme = world.guild
    out = await world.sb.slash(acme, acme.member("alice"), "warden pin")
    assert "Only server admins" in out.text
    assert await pins(world) == [("acme", acme.id, None)]
    out = await world.sb.slash(acme, acme.owner, "warden pin")
    assert out.ephemeral
    assert f"[guild.acme] in config.toml belongs to this server (id {acme.id})" in out.text, out.text
    assert await pins(world) == [("acme", acme.id, acme.owner.id)]
    out = await world.sb.slash(acme, acme.owner, "warden doctor")
    assert "everything checks out" in out.text and f"confirmed by <@{acme.owner.id}>" in out.text, out.text
    # An admin of a same-named server cannot take the pin over.
    impostor = await join(world, copy.deepcopy(ACME))
    out = await world.sb.slash(impostor, impostor.owner, "warden pin")
    assert "Nothing to confirm" in out.text and "pinned to another server" in out.text, out.text
    assert await pins(world) == [("acme", acme.id, acme.owner.id)]


async def decided(world, guild_id: int) -> list[str]:
    """The audit rules that decided in this guild, once the bot has heard and handled every entry."""
    for _ in range(20):
        await world.bot.services.audit.drain()
        await world.settle()
        await asyncio.sleep(0.02)
    async with world.bot.session_factory() as s:
        return list(await s.scalars(select(LedgerEntry.rule).where(LedgerEntry.guild_id == guild_id)))


async def test_the_audit_rules_of_the_pinned_server_do_not_act_in_a_look_alike(world):
    """acme's rules revert a JIT role given by hand; in a same-named server Warden has no say."""
    acme = world.guild
    impostor = await join(world, copy.deepcopy(ACME))
    await world.sb.admin.add_role(impostor, "erin", "deployers", actor=impostor.member("alice"))
    assert "jit-role-by-hand" not in await decided(world, impostor.id)
    assert impostor.member("erin").has_role("deployers")
    # The same change in the pinned server is taken back.
    await world.sb.admin.add_role(acme, "erin", "deployers", actor=acme.member("alice"))
    assert "jit-role-by-hand" in await decided(world, acme.id)
    assert not acme.member("erin").has_role("deployers")
