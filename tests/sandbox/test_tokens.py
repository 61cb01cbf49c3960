"""Interaction tokens follow the sandbox clock: follow-ups stop working after 15 minutes."""

from __future__ import annotations

import datetime as dt

import aiohttp

from bot.clock import ManualClock
from sandbox import SandboxDiscord
from tests.helpers import TinyBot


async def test_followup_token_expires_with_the_clock():
    clock = ManualClock()
    async with SandboxDiscord(clock=clock) as sb:
        sb.point_discord_here()
        g = sb.create_guild("acme")
        alice = g.add_member("alice")
        bot = TinyBot(sb)
        await bot.start()
        try:
            out = await sb.slash(g, alice, "ping")
            url = f"{sb.api_url}/webhooks/{sb.application_id}/{out.record.token}"
            async with aiohttp.ClientSession() as s:
                async with s.post(url, json={"content": "still here"}, params={"wait": "true"}) as r:
                    assert r.status == 200
                assert [m.content for m in out.followups] == ["still here"]
                clock.advance(dt.timedelta(minutes=16))
                async with s.post(url, json={"content": "too late"}) as r:
                    assert r.status == 401 and (await r.json())["code"] == 50027
                async with s.patch(url + "/messages/@original", json={"content": "x"}) as r:
                    assert r.status == 401
            # audit-log entry ids (snowflakes) follow the sandbox clock too
            await sb.admin.add_role(g, alice, g.create_role("late"))
            entry_id = int(sb.audit_log(g)[0]["id"])
            created = dt.datetime.fromtimestamp(((entry_id >> 22) + 1420070400000) / 1000, dt.UTC)
            assert abs((created - clock.now()).total_seconds()) < 5
        finally:
            await bot.stop()
        sb.conformance.assert_ok()
