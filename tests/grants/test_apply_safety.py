"""Applying a grant against a real database, with a Discord that is slow, fails or loses the process.

Each test is a defect from the security review: access that outlived its approval, or a clock
restarted by a crash. Discord is a recording fake here so the interleavings can be forced.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import discord
import pytest
from sqlalchemy import select

from bot.db.models import Grant, GrantStatus, LedgerEntry
from bot.grants.service import APPLY_CLAIM
from tests.helpers import Crash, FakeDiscord, Holder, approved_grant, grants

HOUR = dt.timedelta(hours=1)


async def test_a_revoke_while_the_role_is_being_added_still_removes_it(session_factory, clock):
    discord_ = FakeDiscord()
    discord_.hold = asyncio.Event()
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock)
    applying = asyncio.create_task(svc.apply(gid))
    await discord_.entered.wait()  # the add is on its way to Discord
    revoked = await svc.revoke(Holder(7), gid, "changed my mind")  # type: ignore[arg-type]
    assert revoked.status in (GrantStatus.REMOVING, GrantStatus.REVOKED)
    discord_.hold.set()  # ...and lands after the revoke
    await applying
    assert not discord_.holds(7, 5), "the role outlived its revoke"
    assert discord_.calls == ["add", "remove"]
    assert (await svc.get(gid)).status == GrantStatus.REVOKED


async def test_a_crash_between_discord_and_the_database_keeps_the_first_clock(session_factory, clock):
    discord_ = FakeDiscord()
    discord_.crash_after_apply = True
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock, hours=2)
    first = clock.now()
    with pytest.raises(Crash):
        await svc.apply(gid)
    assert discord_.holds(7, 5)  # access exists in Discord, the process is gone

    # Down for 90 minutes. On recovery the grant keeps its first clock: it ends at first + 2h.
    clock.advance(dt.timedelta(minutes=90))
    discord_.crash_after_apply = False
    again = grants(session_factory, clock, discord_)
    await again.reapply_stale()
    grant = await again.get(gid)
    assert grant.status == GrantStatus.ACTIVE
    assert grant.applied_at == first and grant.expires_at == first + 2 * HOUR
    clock.advance(dt.timedelta(minutes=30))
    await again.expire_due()
    assert not discord_.holds(7, 5)


async def test_a_crash_longer_than_the_grant_removes_it_at_recovery(session_factory, clock):
    discord_ = FakeDiscord()
    discord_.crash_after_apply = True
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock, hours=1)
    with pytest.raises(Crash):
        await svc.apply(gid)
    clock.advance(3 * HOUR)
    again = grants(session_factory, clock, discord_)
    await again.reapply_stale()  # never re-applies what is already over
    await again.expire_due()
    assert not discord_.holds(7, 5)
    assert (await again.get(gid)).status == GrantStatus.EXPIRED
    assert discord_.calls == ["add", "remove"]


async def test_while_an_apply_holds_its_claim_no_sweep_reapplies_it(session_factory, clock):
    discord_ = FakeDiscord()
    discord_.hold = asyncio.Event()
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock)
    applying = asyncio.create_task(svc.apply(gid))
    await discord_.entered.wait()
    clock.advance(dt.timedelta(minutes=3))
    assert dt.timedelta(minutes=3) > APPLY_CLAIM
    other = grants(session_factory, clock, FakeDiscord())
    # The claim has lapsed by the clock: another process may take over, but only once.
    assert await other.reapply_stale() == 1
    discord_.hold.set()
    await applying
    assert (await svc.get(gid)).status == GrantStatus.ACTIVE


async def test_a_timeout_does_not_leave_a_granted_role_behind(session_factory, clock):
    discord_ = FakeDiscord()
    discord_.apply_error = TimeoutError()
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock)
    grant = await svc.apply(gid)
    assert grant.status in (GrantStatus.REMOVING, GrantStatus.FAILED)
    await svc.expire_due()  # the cleanup removal is due at once
    assert not discord_.holds(7, 5), "a grant marked failed after a timeout was left in Discord"
    assert (await svc.get(gid)).status == GrantStatus.FAILED


async def test_a_refusal_fails_closed_without_a_removal(session_factory, clock):
    discord_ = FakeDiscord()
    response = type("R", (), {"status": 403, "reason": "Forbidden"})()
    discord_.apply_error = discord.Forbidden(response, {"code": 50013, "message": "Missing Permissions"})
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock)
    grant = await svc.apply(gid)
    assert grant.status == GrantStatus.FAILED
    assert discord_.calls == []


async def test_a_standing_role_is_never_removed_by_a_grant_of_it(session_factory, clock):
    discord_ = FakeDiscord()
    discord_.roles[7] = {5}  # given by an admin, outside Warden, before the grant was applied
    svc = grants(session_factory, clock, discord_)
    gid = await approved_grant(session_factory, clock, hours=1)
    await svc.apply(gid)
    clock.advance(2 * HOUR)
    await svc.expire_due()
    assert discord_.holds(7, 5)
    assert (await svc.get(gid)).status == GrantStatus.EXPIRED
    async with session_factory() as s:
        reasons = (await s.scalars(select(LedgerEntry.reason))).all()
    assert any("already held this role" in r for r in reasons)


async def test_an_overlapping_grant_keeps_the_role_when_the_first_ends(session_factory, clock):
    discord_ = FakeDiscord()
    svc = grants(session_factory, clock, discord_)
    first = await approved_grant(session_factory, clock, hours=1)
    await svc.apply(first)
    async with session_factory() as s, s.begin():
        g = Grant(
            guild_id=1,
            scope_id="other-scope",
            subject_id=7,
            kind="role",
            target_id=5,
            status=GrantStatus.APPROVED,
            duration_seconds=3 * 3600,
            created_at=clock.now(),
        )
        s.add(g)
        await s.flush()
        second = g.id
    await svc.apply(second)
    clock.advance(2 * HOUR)
    await svc.expire_due()
    assert (await svc.get(first)).status == GrantStatus.EXPIRED
    assert discord_.holds(7, 5), "the end of one grant took away another grant's access"
    clock.advance(2 * HOUR)
    await svc.expire_due()
    assert not discord_.holds(7, 5)
