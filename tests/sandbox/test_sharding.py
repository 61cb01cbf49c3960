"""Gateway sharding as Discord does it: IDENTIFY with [shard_id, shard_count], READY and guild
events only for the shard's guilds ((guild_id >> 22) % shard_count), DMs on shard 0, close 4010
for an invalid shard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from sandbox import SandboxDiscord
from sandbox.gateway import GUILD_MEMBERS, GUILDS, shard_of

INTENTS = GUILDS | GUILD_MEMBERS


def guilds_on_both_shards(sb: SandboxDiscord, count: int = 2) -> dict[int, list[Any]]:
    """Create guilds until each of two shards owns ``count`` of them (ids follow the clock)."""
    by_shard: dict[int, list[Any]] = {0: [], 1: []}
    n = 0
    while min(len(v) for v in by_shard.values()) < count:
        sb.snowflake._last += 1 << 22  # the next id is a millisecond later: the other shard
        g = sb.create_guild(f"guild-{n}")
        g.add_member("alice")
        g.create_role("deployers")
        by_shard[shard_of(g.id, 2)].append(g)
        n += 1
    return by_shard


class RawShard:
    """One gateway connection, spoken by hand, so every frame can be checked."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws

    async def identify(self, sb: SandboxDiscord, shard: Any) -> None:
        hello = await self.ws.receive_json(timeout=5)
        assert hello["op"] == 10
        d: dict[str, Any] = {"token": sb.token, "intents": INTENTS, "properties": {}}
        if shard is not None:
            d["shard"] = shard
        await self.ws.send_json({"op": 2, "d": d})

    async def next(self, timeout: float = 2.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    async def events(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every dispatch until the connection stays quiet for ``quiet`` seconds."""
        out = []
        while True:
            try:
                frame = await self.next(quiet)
            except TimeoutError:
                return out
            if frame["op"] == 0:
                out.append(frame)


@pytest.fixture
async def sb() -> AsyncIterator[SandboxDiscord]:
    async with SandboxDiscord() as sandbox:
        yield sandbox
    sandbox.conformance.assert_ok()


async def connect(sb: SandboxDiscord, shard: Any) -> RawShard:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(sb.gateway_url)
    raw = RawShard(session, ws)
    await raw.identify(sb, shard)
    return raw


async def close(*shards: RawShard) -> None:
    for s in shards:
        await s.ws.close()
        await s.session.close()


async def test_ready_and_guild_creates_list_only_the_shards_guilds(sb: SandboxDiscord) -> None:
    by_shard = guilds_on_both_shards(sb)
    zero, one = await connect(sb, [0, 2]), await connect(sb, [1, 2])
    try:
        for shard_id, conn in ((0, zero), (1, one)):
            events = await conn.events()
            ready = events[0]
            assert ready["t"] == "READY" and ready["d"]["shard"] == [shard_id, 2]
            expected = {str(g.id) for g in by_shard[shard_id]}
            assert {g["id"] for g in ready["d"]["guilds"]} == expected
            assert {e["d"]["id"] for e in events if e["t"] == "GUILD_CREATE"} == expected
    finally:
        await close(zero, one)


async def test_unsharded_identify_gets_every_guild(sb: SandboxDiscord) -> None:
    by_shard = guilds_on_both_shards(sb, 1)
    conn = await connect(sb, None)
    try:
        ready = (await conn.events())[0]
        assert ready["d"]["shard"] == [0, 1]
        assert {g["id"] for g in ready["d"]["guilds"]} == {str(g.id) for v in by_shard.values() for g in v}
    finally:
        await close(conn)


async def test_guild_events_and_interactions_go_to_the_owning_shard_dms_to_shard_zero(
    sb: SandboxDiscord,
) -> None:
    by_shard = guilds_on_both_shards(sb)
    conns = {0: await connect(sb, [0, 2]), 1: await connect(sb, [1, 2])}
    try:
        for conn in conns.values():
            await conn.events()  # READY and GUILD_CREATEs
        for guilds in by_shard.values():
            for g in guilds:
                await sb.admin.add_role(g, g.member("alice"), g.role("deployers"))
        # A guild interaction and a DM interaction, built the way the sandbox dispatches them.
        g1 = by_shard[1][0]
        sb.gateway.dispatch("INTERACTION_CREATE", {"id": "1", "type": 2, "guild_id": str(g1.id)})
        sb.gateway.dispatch("INTERACTION_CREATE", {"id": "2", "type": 2, "user": {"id": "5"}})
        seen = {shard_id: await conn.events() for shard_id, conn in conns.items()}
        for shard_id, events in seen.items():
            updates = {e["d"]["guild_id"] for e in events if e["t"] == "GUILD_MEMBER_UPDATE"}
            assert updates == {str(g.id) for g in by_shard[shard_id]}
            assert all(
                shard_of(int(e["d"]["guild_id"]), 2) == shard_id for e in events if "guild_id" in e["d"]
            )
        interactions = {
            k: [e["d"]["id"] for e in v if e["t"] == "INTERACTION_CREATE"] for k, v in seen.items()
        }
        assert interactions == {0: ["2"], 1: ["1"]}
    finally:
        await close(*conns.values())


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0,2", [0, "2"], [True, 2]])
async def test_invalid_shard_is_closed_with_4010(sb: SandboxDiscord, shard: Any) -> None:
    conn = await connect(sb, shard)
    try:
        msg = await conn.ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert conn.ws.close_code == 4010
        assert sb.gateway.identifies == 0
    finally:
        await close(conn)


async def test_discord_py_autosharded_client_sees_each_guild_once(sb: SandboxDiscord) -> None:
    """discord.py's own sharding against the sandbox: two shards in one client, one shard in another."""
    sb.point_discord_here()
    by_shard = guilds_on_both_shards(sb)
    intents = discord.Intents.none()
    intents.guilds = True
    both = discord.AutoShardedClient(intents=intents, shard_ids=[0, 1], shard_count=2)
    only_one = discord.AutoShardedClient(intents=intents, shard_ids=[1], shard_count=2)
    ready = [on_ready_event(both), on_ready_event(only_one)]

    async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s between shards' IDENTIFYs (Discord's rate limit)

    both.before_identify_hook = no_identify_delay  # type: ignore[method-assign]
    tasks = []
    try:
        for client in (both, only_one):
            await client.login(sb.token)
            tasks.append(asyncio.create_task(client.connect(reconnect=False)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 20)
        everyone = {g.id for v in by_shard.values() for g in v}
        assert {g.id for g in both.guilds} == everyone
        assert {g.id for g in only_one.guilds} == {g.id for g in by_shard[1]}
        assert {g.shard_id for g in only_one.guilds} == {1}
    finally:
        for client in (both, only_one):
            await client.close()
        for task in tasks:
            task.cancel()


def on_ready_event(client: discord.Client) -> asyncio.Event:
    event = asyncio.Event()

    async def on_ready() -> None:
        event.set()

    client.event(on_ready)
    return event
