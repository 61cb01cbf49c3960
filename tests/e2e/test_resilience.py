"""Restarts, downtime, Discord failures and noise control, through the sandbox and the real client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from sqlalchemy import select

from bot.db.models import Grant, LedgerEntry
from tests.helpers import card_in, request

ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


async def approve_deploy(world, who="alice", duration="2h"):
    g = world.guild
    await request(world, who, duration=duration)
    card = card_in(world, 1)
    await world.sb.click(g.member("bob"), card, "Approve")
    await world.sb.click(g.member("carol"), card, "Approve")
    assert g.member(who).has_role("deployers")


async def test_buttons_keep_working_after_a_restart_mid_approval(world):
    g = world.guild
    await request(world, "alice")
    await world.sb.click(g.member("bob"), card_in(world, 1), "Approve")
    await world.restart_bot()
    out = await world.sb.click(g.member("carol"), card_in(world, 1), "Approve")
    assert "completed the quorum" in out.text
    assert g.member("alice").has_role("deployers")
    # The deny modal also works for a card posted before the restart.
    world.clock.advance(dt.timedelta(minutes=1))
    await world.sb.slash(
        g, g.member("erin"), "jit request", scope="incident-room", duration="1h", reason="sev2"
    )
    await world.restart_bot()
    modal = await world.sb.click(g.member("bob"), card_in(world, 2), "Deny")
    await world.sb.submit_modal(g.member("bob"), modal, reason="not on the rota")
    assert "not on the rota" in card_in(world, 2).text


async def test_grant_that_expired_during_downtime_is_removed_at_start_up(world):
    g = world.guild
    await approve_deploy(world)
    await world.stop_bot()
    world.clock.advance(dt.timedelta(hours=3))  # past the 2h expiry while nobody was running
    assert g.member("alice").has_role("deployers")
    await world.start_bot()  # returns once the start-up catch-up sweep has run
    assert not g.member("alice").has_role("deployers")
    reasons = [e.get("reason") or "" for e in world.sb.audit_log(g) if e["action_type"] == 25]
    assert any("Warden grant #1 (request #1, scope deploy) expired" in r for r in reasons), reasons


async def test_gateway_resume_delivers_what_happened_while_disconnected(world):
    g = world.guild
    await world.sb.disconnect_gateway(hold=True)
    await world.sb.admin.add_role(g, g.member("erin"), g.role("engineers"))
    world.sb.release_gateway()
    bot_guild = world.bot.get_guild(g.id)
    await world.eventually(lambda: bot_guild.get_member(g.member("erin").id).get_role(g.role("engineers").id))
    out = await request(world, "erin")  # erin may now request deploy
    assert "waiting for approval" in out.text


async def test_role_add_retried_through_5xx_and_429(world):
    g = world.guild
    world.sb.faults.fail(method="PUT", path=ROLE_ROUTE, status=429, times=1, retry_after=0.05)
    world.sb.faults.fail(method="PUT", path=ROLE_ROUTE, status=503, times=1)
    out = await request(world, "dave", duration="30m")  # auto-approved
    assert "approved automatically" in out.text
    assert g.member("dave").has_role("deployers")


async def test_role_add_refused_fails_closed_and_is_explained(world):
    g = world.guild
    world.sb.faults.fail(
        method="PUT", path=ROLE_ROUTE, status=403, code=50013, message="Missing Permissions", times=None
    )
    out = await request(world, "dave", duration="30m")
    assert "could not apply it" in out.text and "50013" in out.text
    assert not g.member("dave").has_role("deployers")
    await world.settle()
    gov = world.sb.messages(g.channel("governance"))
    assert any("50013" in m.text and "could not apply" in m.text for m in gov)


async def test_removal_is_never_dropped_and_a_person_is_told(world):
    g = world.guild
    await approve_deploy(world)
    world.sb.faults.fail(
        method="DELETE", path=ROLE_ROUTE, status=403, code=50013, message="Missing Permissions", times=None
    )
    report = await world.advance(dt.timedelta(hours=2))
    assert report.expired == 1 and report.still_due == 1
    assert g.member("alice").has_role("deployers")
    await world.advance(dt.timedelta(seconds=6))
    await world.advance(dt.timedelta(seconds=11))  # third failure: governance is told
    await world.settle()
    gov = " ".join(m.text for m in world.sb.messages(g.channel("governance")))
    assert "failed 3 times to remove grant #1" in gov
    world.sb.faults.clear()
    report = await world.advance(dt.timedelta(seconds=21))
    assert report.removed == 1
    assert not g.member("alice").has_role("deployers")
    async with world.bot.session_factory() as s:
        grant = await s.get(Grant, 1)
        expired = (await s.scalars(select(LedgerEntry).where(LedgerEntry.outcome == "expired"))).all()
    assert grant.status == "expired" and len(expired) == 1  # one decision, however many attempts


async def test_closed_dms_do_not_break_the_flow(world):
    g = world.guild
    g.member("alice").dms_open = False
    await approve_deploy(world)
    assert world.sb.dms(g.member("alice")) == []


async def test_no_message_can_ping_everyone_or_roles(world):
    await approve_deploy(world)
    await world.advance(dt.timedelta(hours=2))
    await world.settle()
    sends = [
        r
        for r in world.sb.request_log
        if r.method in ("POST", "PATCH")
        and isinstance(r.body, dict)
        and ("content" in r.body or "embeds" in r.body)
    ]
    assert len(sends) > 10
    for r in sends:
        mentions = r.body.get("allowed_mentions")
        assert mentions is not None, (r.path, r.body)
        assert "everyone" not in mentions.get("parse", []) and "roles" not in mentions.get("parse", [])
        assert not mentions.get("roles")


async def test_doctor_explains_every_problem_and_is_for_admins_only(world):
    g = world.guild
    owner = g.owner
    out = await world.sb.slash(g, g.member("alice"), "warden doctor")
    assert "Only server admins" in out.text
    out = await world.sb.slash(g, owner, "warden doctor")
    assert "everything checks out" in out.text, out.text
    deployers = g.role("deployers")
    deployers.position = 99
    world.sb._role_update_event(g, deployers)
    await world.eventually(lambda: world.bot.get_guild(g.id).get_role(deployers.id).position == 99)
    out = await world.sb.slash(g, owner, "warden doctor")
    assert "scope `deploy`" in out.text and "move Warden's role above it" in out.text
    assert "✅ scope `incident-room`" in out.text
    cmd = next(c for c in world.sb.commands() if c["name"] == "warden")
    assert str(cmd["default_member_permissions"]) == str(1 << 5)  # Manage Server: hidden from everyone else


async def test_sweeps_survive_a_database_outage_and_catch_up(world, caplog):
    g = world.guild
    await approve_deploy(world)
    await world.database_down()
    report = await world.advance(dt.timedelta(hours=3))
    assert report.failures >= 1 and report.expired == 0
    assert g.member("alice").has_role("deployers")  # nothing can be claimed while the database is down
    assert "the database is unavailable" in caplog.text
    await world.database_up()
    report = await world.run_due()
    assert report.expired == 1 and not g.member("alice").has_role("deployers")


async def test_the_scheduler_removes_an_expired_grant_without_being_asked(policy, acme_spec, db_url, clock):
    from sandbox.harness import SandboxWorld

    async with SandboxWorld(policy, database_url=db_url, clock=clock, scheduler_seconds=0.1) as world:
        world.add_guild(acme_spec)
        await world.start_bot()
        g = world.guild
        await request(world, "dave", duration="30m")  # auto-approved
        assert g.member("dave").has_role("deployers")
        world.clock.advance(dt.timedelta(minutes=30))  # nobody calls run_due: APScheduler's sweep must
        await world.eventually(lambda: not g.member("dave").has_role("deployers"), timeout=5, what="removal")
        await world.sb.wait_for_message(g.channel("governance"), contains="Access expired", timeout=5)


async def test_deny_opens_its_modal_in_time_even_when_the_check_is_slow(
    policy, acme_spec, db_url, clock, monkeypatch
):
    import asyncio

    from bot.wiring import Tuning
    from sandbox.harness import SandboxWorld

    quick = Tuning(run_scheduler=False, guild_ready_timeout=0.05, deny_precheck_seconds=0.05)
    async with SandboxWorld(policy, database_url=db_url, clock=clock, tuning=quick) as world:
        world.add_guild(acme_spec)
        await world.start_bot()
        g = world.guild
        await request(world, "alice")
        real_check = world.bot.services.approvals.check_can_vote

        async def slow_check(member, request_id):
            await asyncio.sleep(1)  # a database under load
            await real_check(member, request_id)

        monkeypatch.setattr(world.bot.services.approvals, "check_can_vote", slow_check)
        world.sb.interaction_deadline = 0.5  # Discord's 3 s, scaled down
        modal = await world.sb.click(g.member("bob"), card_in(world, 1), "Deny")
        assert modal.modal is not None
        await world.sb.submit_modal(g.member("bob"), modal, reason="no ticket")
        assert "Denied by" in card_in(world, 1).text
        world.sb.conformance.assert_ok()


async def test_closing_mid_start_up_finishes_or_cuts_short_its_work_before_discord_closes(world, caplog):
    """SIGTERM while the start-up catch-up reads the audit log: the read is waited for (then cut
    short), never failed by a closed HTTP session — no error, no traceback in the log."""
    await world.stop_bot()
    slow = world.sb.faults.delay("GET", "/guilds/{guild_id}/audit-logs", seconds=0.8, times=1)
    starting = asyncio.create_task(world.start_bot())
    await world.eventually(lambda: slow.hits == 1, what="the catch-up's audit-log read in flight")
    bot = world.bot
    bot.follow_ups.drain_seconds = 0.2  # then cut short: the read outlasts it
    caplog.clear()
    await world.stop_bot()
    assert not bot._own, "start-up work still running after close()"
    with contextlib.suppress(Exception):
        await starting
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failures == [], [r.getMessage() for r in failures]
    assert "start-up or event work cut short at shutdown" in caplog.text
