"""Activity Warden can see, and what dormancy does with it, through the sandbox with virtual time:
webhook messages move the inventory's last activity; a JIT grant whose holder is idle is ended early."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.db.models import Grant, GrantStatus, Identity, MemberActivity
from tests.helpers import example_policy_with, until


@pytest.fixture
def policy(tmp_path):
    return example_policy_with(tmp_path, 'end_idle_grants_after = "0s"', 'end_idle_grants_after = "1h"')


async def one(world, query):
    async with world.bot.session_factory() as s:
        return (await s.execute(query)).scalars().first()


async def test_webhook_messages_move_its_last_activity(world):
    g = world.guild
    hook = await world.sb.admin.create_webhook(g, "incident", "ci-hook", actor=g.member("bob"))
    await world.sb.slash(g, g.owner, "warden inventory")  # the inventory learns the webhook
    row = await one(world, select(Identity).where(Identity.kind == "webhook"))
    assert row.last_activity_at is None and row.owner_id == g.member("bob").id

    await world.advance(dt.timedelta(days=3))
    posted_at = world.clock.now()
    await world.sb.admin.post_as_webhook(g, hook)

    async def activity():
        return (await one(world, select(Identity).where(Identity.kind == "webhook"))).last_activity_at

    await until(lambda: activity(), posted_at)
    page = await world.sb.slash(g, g.owner, "warden inventory")
    assert "ci-hook" in page.text and "last activity" in page.text


async def test_idle_holder_loses_the_grant_early_and_is_told(world):
    g = world.guild
    alice = g.member("alice")
    await world.sb.slash(g, alice, "jit request", scope="incident-room", duration="4h", reason="sev2")
    card = next(m for m in world.sb.messages(g.channel("approvals")) if "incident-room" in m.text)
    await world.sb.click(g.member("bob"), card, "Approve")
    incident = g.channel("incident")
    assert incident.overwrite_for(alice.id) is not None

    await world.advance(dt.timedelta(minutes=30))
    await world.sb.admin.post(g, "incident", alice, "looking at the graphs")
    seen_at = world.clock.now()

    async def last_seen():
        return await one(world, select(MemberActivity.last_seen_at).where(MemberActivity.user_id == alice.id))

    await until(last_seen, seen_at)  # her message counted as activity

    report = await world.advance(dt.timedelta(minutes=59))
    assert report.grants_idle_ended == 0 and incident.overwrite_for(alice.id) is not None
    report = await world.advance(dt.timedelta(minutes=2))  # 61 minutes after her last message
    assert report.grants_idle_ended == 1
    assert incident.overwrite_for(alice.id) is None
    grant = await one(world, select(Grant))
    assert grant.status == GrantStatus.REVOKED and grant.ended_by is None
    dm = await world.sb.wait_for_message(alice, contains="ended early by Warden")
    assert "not been seen active" in dm.text
    await world.settle()
    narrative = next(
        m for m in world.sb.messages(g.channel("governance")) if "not been seen active" in m.text
    )
    assert "guild.end_idle_grants_after" in narrative.text
    ok, problems = await world.ledger_verifies()
    assert ok, problems
    report = await world.advance(dt.timedelta(hours=1))
    assert report.grants_idle_ended == 0  # once


async def test_messages_count_as_activity_without_being_kept_in_memory(world):
    g = world.guild
    alice = g.member("alice")
    await world.sb.admin.post(g, "incident", alice, "looking at the graphs")

    async def last_seen():
        return await one(world, select(MemberActivity.last_seen_at).where(MemberActivity.user_id == alice.id))

    await until(last_seen, world.clock.now())
    assert list(world.bot.cached_messages) == []  # discord.py's message cache is off
