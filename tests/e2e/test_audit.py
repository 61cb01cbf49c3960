"""Audit listeners end to end: changes made by hand in the sandbox reach Warden over the gateway
(GUILD_AUDIT_LOG_ENTRY_CREATE) or its audit-log catch-up, are decided by the default rules,
recorded in the ledger, narrated in the governance channel and reverted in Discord."""

from __future__ import annotations

import asyncio
import datetime as dt
import tomllib
from typing import Any

import pytest
from sqlalchemy import delete, select

from bot.db.models import AuditProcessed, LedgerEntry, NarrativeOutbox
from bot.ledger import read_checkpoints, verify_chain
from bot.policy import parse_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld, sandbox_tuning
from tests.helpers import entries, governance, request, settled

ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"

ADMINISTRATOR = 1 << 3
KICK_MEMBERS = 1 << 1
MANAGE_ROLES = 1 << 28
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14


def audit_policy(rules: list[dict[str, Any]] | None = None, **guild: Any) -> Any:
    """config.example.toml with only Warden's default rules (and ``rules``); sec-leads are the
    policy's admins."""
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data.pop("rule", None)
    if rules:
        data["rule"] = rules
    data["guild"]["acme"] |= {"admins": ["sec-leads"], **guild}
    return parse_policy(data)


@pytest.fixture
async def world(db_url, clock):
    async with SandboxWorld(audit_policy(), database_url=db_url, clock=clock) as w:
        w.add_guild(ACME)
        await w.start_bot()
        yield w
        w.sb.conformance.assert_ok()


async def until_decided(world: SandboxWorld, rule: str, count: int = 1) -> None:
    """Wait for ``count`` ledger entries by ``rule`` (an alert changes nothing to wait for in Discord)."""
    for _ in range(300):
        await settled(world)
        if len(await entries(world, rule=rule)) >= count:
            await settled(world)
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no decision by {rule}: {[(e.rule, e.outcome) for e in await entries(world)]}")


async def test_jit_role_given_by_hand_is_taken_back(world):
    g = world.guild
    await world.sb.admin.add_role(g, "erin", "deployers")
    await world.eventually(lambda: not g.member("erin").has_role("deployers"), what="the revert")
    await settled(world)
    blocked = await entries(world, rule="jit-role-by-hand")
    assert [e.outcome for e in blocked] == ["blocked", "reverted"]
    assert blocked[0].proof["member_id"] == g.member("erin").id
    assert blocked[0].actor_id == g.owner.id
    texts = governance(world)
    assert any("Change blocked" in t and "jit-role-by-hand" in t for t in texts), texts
    assert any("Change undone" in t for t in texts), texts
    # Warden's own removal is in the audit log with its reason, and is not drift.
    mine = [e for e in world.sb.audit_log(g) if e["user_id"] == str(world.sb.bot_user.id)]
    assert mine and "jit-role-by-hand" in mine[0]["reason"]
    assert len(await entries(world, rule="warden")) == 0
    ok, problems = await world.ledger_verifies()
    assert ok, problems


async def test_role_above_its_scope_ceiling_is_put_back(world):
    g = world.guild
    await world.sb.admin.set_role_permissions(
        g,
        "deployers",
        ["manage_messages", "attach_files", "send_messages", "view_channel", "embed_links"],
        actor=g.member("bob"),
    )
    await world.eventually(lambda: not g.role("deployers").permissions & EMBED_LINKS, what="the revert")
    await settled(world)
    decided = await entries(world, rule="role-above-ceiling")
    assert [e.outcome for e in decided] == ["blocked", "reverted"]
    assert decided[0].proof["permissions_gained"] == ["embed_links"]
    assert g.role("deployers").permissions & SEND_MESSAGES  # only the added bit went
    assert any("role-above-ceiling" in t for t in governance(world))


async def test_dangerous_permission_by_a_non_admin_is_reverted(world):
    g = world.guild
    await world.sb.admin.set_role_permissions(g, "engineers", ["manage_roles"], actor=g.member("alice"))
    await world.eventually(lambda: not g.role("engineers").permissions & MANAGE_ROLES, what="the revert")
    await settled(world)
    decided = await entries(world, rule="dangerous-permission-by-non-admin")
    assert [e.outcome for e in decided] == ["blocked", "reverted"]
    assert decided[0].proof["actor_is_admin"] is False
    assert decided[0].actor_id == g.member("alice").id
    assert any("dangerous-permission-by-non-admin" in t and "Change blocked" in t for t in governance(world))


async def test_dangerous_permission_by_an_admin_is_an_alert_only(world):
    g = world.guild
    await world.sb.admin.set_role_permissions(g, "engineers", ["kick_members"], actor=g.member("bob"))
    await until_decided(world, "dangerous-permission-added")
    decided = await entries(world, rule="dangerous-permission-added")
    assert [e.outcome for e in decided] == ["alert"]
    assert g.role("engineers").permissions & KICK_MEMBERS  # not reverted
    assert any("Change needs attention" in t and "dangerous-permission-added" in t for t in governance(world))


async def test_dangerous_bot_is_quarantined(world):
    g = world.guild
    raider = await world.sb.admin.add_bot(g, "raid-bot", ["administrator"])
    managed = next(r for r in g.roles if r.managed and r.bot_id == raider.id)
    await world.sb.admin.add_role(g, raider, "engineers", actor=g.member("bob"))
    await world.eventually(lambda: not managed.permissions & ADMINISTRATOR, what="the quarantine")
    await settled(world)
    decided = await entries(world, rule="dangerous-bot-quarantined")
    assert [e.outcome for e in decided] == ["approval-required", "reverted"]
    assert decided[0].proof["bot_id"] == raider.id
    assert any("Change reverted — approvers can restore it" in t for t in governance(world))
    assert "held_change_id" in decided[0].proof  # its Approve / Deny card: tests/e2e/test_held_changes.py
    # Its own managed role cannot be taken from it: its permissions were stripped instead.
    assert managed in raider.roles


async def test_bot_added_is_an_alert(world):
    g = world.guild
    helper = await world.sb.admin.add_bot(g, "helper-bot")
    await until_decided(world, "bot-added")
    decided = await entries(world, rule="bot-added")
    assert [e.outcome for e in decided] == ["alert"]
    assert decided[0].proof["bot_id"] == helper.id
    assert g.get_member(helper.id) is not None
    # The integration that came with it is recorded, with no rule covering it.
    assert await entries(world, rule="no-rule-matched")


async def test_webhook_in_a_private_channel_is_deleted(world):
    g = world.guild
    hook = await world.sb.admin.create_webhook(g, "incident", "exfil")
    await world.eventually(lambda: hook not in g.webhooks, what="the webhook deleted")
    await settled(world)
    decided = await entries(world, rule="webhook-in-private-channel")
    assert [e.outcome for e in decided] == ["blocked", "reverted"]
    assert decided[0].proof["channel_is_private"] is True
    deleted = [e for e in world.sb.audit_log(g) if e["action_type"] == 52]
    assert deleted and deleted[0]["user_id"] == str(world.sb.bot_user.id)
    assert any("webhook-in-private-channel" in t for t in governance(world))


async def test_webhook_by_a_non_admin_is_an_alert(world):
    g = world.guild
    hook = await world.sb.admin.create_webhook(g, "approvals", "ci", actor=g.member("alice"))
    await until_decided(world, "webhook-by-non-admin")
    assert [e.outcome for e in await entries(world, rule="webhook-by-non-admin")] == ["alert"]
    assert hook in g.webhooks


async def test_overwrite_opening_a_channel_to_everyone_is_removed(world):
    g = world.guild
    channel = g.channel("approvals")
    await world.sb.admin.set_overwrite(g, channel, g.everyone, allow=["send_messages"])
    await world.eventually(lambda: channel.overwrite_for(g.everyone.id) is None, what="the overwrite removed")
    await settled(world)
    decided = await entries(world, rule="overwrite-opens-channel")
    assert [e.outcome for e in decided] == ["blocked", "reverted"]
    assert decided[0].proof["overwrite_target_broad"] is True
    assert any("overwrite-opens-channel" in t for t in governance(world))


async def test_permission_change_by_a_non_admin_is_an_alert(world):
    g = world.guild
    await world.sb.admin.add_role(g, "erin", "engineers", actor=g.member("alice"))
    await until_decided(world, "permission-change-by-non-admin")
    assert [e.outcome for e in await entries(world, rule="permission-change-by-non-admin")] == ["alert"]
    assert g.member("erin").has_role("engineers")  # a standing role: never taken back


async def test_mfa_lowered_is_an_alert(world):
    g = world.guild
    g.mfa_level = 1
    await world.sb.admin.update_guild(g, mfa_level=0)
    await until_decided(world, "mfa-lowered")
    decided = await entries(world, rule="mfa-lowered")
    assert [e.outcome for e in decided] == ["alert"]
    assert decided[0].proof["before"]["mfa_level"] == 1
    assert any("mfa-lowered" in t for t in governance(world))


async def test_channel_create_and_delete_are_recorded(world):
    g = world.guild
    channel = await world.sb.admin.create_channel(g, "secret", private=True, actor=g.member("bob"))
    await world.sb.admin.delete_channel(g, channel, actor=g.member("bob"))
    await until_decided(world, "no-rule-matched", 2)
    events = [e.proof.get("event") for e in await entries(world, rule="no-rule-matched")]
    assert events == ["channel_create", "channel_delete"]
    assert not any("no-rule-matched" in t for t in governance(world))  # allowed: ledger only


async def test_unknown_action_type_is_recorded_as_unclassified(world):
    g = world.guild
    world.sb._audit(g, 9999, g.owner.id, g.id, reason="from the future")
    await until_decided(world, "unclassified")
    decided = await entries(world, rule="unclassified")
    assert [e.outcome for e in decided] == ["alert"]
    assert "unknown action type 9999" in decided[0].proof["problem"]
    # The listener goes on.
    await world.sb.admin.add_role(g, "erin", "deployers")
    await world.eventually(lambda: not g.member("erin").has_role("deployers"), what="the next revert")


# ---- nothing missed, nothing twice ------------------------------------------------------------


async def decided_once(world: SandboxWorld) -> None:
    """Every audit-log entry has at most one first decision in the ledger (reverts aside)."""
    firsts = [
        e.proof["audit_log_entry"]
        for e in await entries(world)
        if "audit_log_entry" in e.proof and e.outcome not in ("reverted", "revert-failed")
    ]
    assert len(firsts) == len(set(firsts)), firsts
    async with world.bot.session_factory() as s:
        rows = list(await s.scalars(select(AuditProcessed.entry_id)))
    assert len(rows) == len(set(rows))


async def test_catch_up_after_a_restart_misses_nothing_and_repeats_nothing(world):
    g = world.guild
    await world.sb.admin.add_role(g, "erin", "deployers")
    await world.eventually(lambda: not g.member("erin").has_role("deployers"), what="the live revert")
    await settled(world)
    await world.stop_bot()
    # While Warden is away: nobody hears these live.
    await world.sb.admin.add_role(g, "alice", "deployers")
    hook = await world.sb.admin.create_webhook(g, "incident", "exfil")
    await world.start_bot()  # returns once the start-up catch-up has run
    assert not g.member("alice").has_role("deployers")
    assert hook not in g.webhooks
    await settled(world)
    assert [e.outcome for e in await entries(world, rule="jit-role-by-hand")] == [
        "blocked",
        "reverted",
        "blocked",
        "reverted",
    ]
    assert [e.outcome for e in await entries(world, rule="webhook-in-private-channel")] == [
        "blocked",
        "reverted",
    ]
    await decided_once(world)
    before = len(await entries(world))
    await world.restart_bot()  # nothing new: nothing decided again
    await settled(world)
    assert len(await entries(world)) == before


async def test_catch_up_after_a_resume_decides_each_entry_once(world):
    g = world.guild
    await world.sb.disconnect_gateway(hold=True)
    await world.sb.admin.add_role(g, "erin", "deployers")
    await world.sb.admin.set_overwrite(g, "approvals", g.everyone, allow=["send_messages"])
    world.sb.release_gateway()
    await world.eventually(lambda: not g.member("erin").has_role("deployers"), what="the revert")
    await world.eventually(
        lambda: g.channel("approvals").overwrite_for(g.everyone.id) is None, what="the overwrite removed"
    )
    await until_decided(world, "overwrite-opens-channel", 2)
    await world.bot.services.audit.catch_up()  # what on_resumed does, once more: still nothing twice
    await settled(world)
    assert [e.outcome for e in await entries(world, rule="jit-role-by-hand")] == ["blocked", "reverted"]
    assert [e.outcome for e in await entries(world, rule="overwrite-opens-channel")] == [
        "blocked",
        "reverted",
    ]
    await decided_once(world)


async def test_reconnect_with_a_new_session_catches_up(world):
    g = world.guild
    world.sb.invalidate_sessions()
    await world.sb.disconnect_gateway(hold=True)
    await world.sb.admin.add_role(g, "erin", "deployers")
    world.sb.release_gateway()
    await world.eventually(lambda: not g.member("erin").has_role("deployers"), timeout=10, what="the revert")
    await until_decided(world, "jit-role-by-hand", 2)
    assert [e.outcome for e in await entries(world, rule="jit-role-by-hand")] == ["blocked", "reverted"]
    await decided_once(world)


async def test_start_up_state_comparison_finds_a_jit_role_without_a_grant(db_url, clock):
    spec = {**ACME, "members": [*ACME["members"], {"name": "mallory", "roles": []}]}
    async with SandboxWorld(audit_policy(), database_url=db_url, clock=clock) as w:
        g = w.add_guild(spec)
        await w.start_bot()  # Warden's first comparison: the standing holders are recorded
        await settled(w)
        await w.stop_bot()
        # While Warden is down, mallory gets the role by hand, and its audit entry is gone.
        await w.sb.admin.add_role(g, "mallory", "deployers", actor=g.member("bob"))
        g.audit_entries.clear()
        assert g.member("mallory").has_role("deployers")
        await w.start_bot()
        assert not g.member("mallory").has_role("deployers")
        await settled(w)
        decided = await entries(w, rule="jit-role-by-hand")
        assert [e.outcome for e in decided] == ["blocked", "reverted"]
        assert "state comparison" in decided[0].proof["found_by"]
        assert any("Change blocked" in m.text for m in w.sb.messages(g.channel("governance")))


# ---- zero false reverts -----------------------------------------------------------------------


async def test_standing_roles_and_overlapping_grants_are_never_reverted(world):
    g = world.guild
    dave = g.member("dave")
    out = await request(world, "dave", duration="30m")  # on call: approved automatically
    assert "approved automatically" in out.text
    assert dave.has_role("deployers")
    # An admin takes the role off and puts it back by hand while the grant is active: sanctioned.
    await world.sb.admin.remove_role(g, dave, "deployers", actor=g.member("bob"))
    await world.sb.admin.add_role(g, dave, "deployers", actor=g.member("bob"))
    await until_decided(world, "sanctioned-grant")
    # A standing, non-JIT role given by an admin: allowed.
    await world.sb.admin.add_role(g, "erin", "engineers", actor=g.member("bob"))
    await settled(world)
    await world.restart_bot()  # the state comparison sees dave's grant and erin's standing role
    await settled(world)
    assert dave.has_role("deployers") and g.member("erin").has_role("engineers")
    assert g.member("alice").has_role("engineers")
    assert [e.outcome for e in await entries(world, rule="sanctioned-grant")] == ["allowed"]
    assert await entries(world, outcome="blocked") == []
    assert await entries(world, outcome="reverted") == []
    removals = [
        e
        for e in world.sb.audit_log(g)
        if e["action_type"] == 25 and e["user_id"] == str(world.sb.bot_user.id)
    ]
    assert all("$remove" not in {c["key"] for c in e.get("changes", [])} for e in removals)


# ---- many at once -----------------------------------------------------------------------------


async def test_a_burst_is_one_narrative_and_every_entry_one_ledger_entry(world):
    g = world.guild
    alice = g.member("alice")
    n = 300
    for i in range(n):
        await world.sb.admin.create_webhook(g, "approvals", f"raid-{i}", actor=alice)
    for _ in range(500):
        await settled(world)
        if len(await entries(world, rule="webhook-by-non-admin")) >= n:
            break
        await asyncio.sleep(0.01)
    decided = await entries(world, rule="webhook-by-non-admin")
    assert len(decided) == n
    assert len({e.proof["audit_log_entry"] for e in decided}) == n
    await world.advance(dt.timedelta(seconds=11))  # the burst went quiet: its summary is recorded
    await settled(world)
    texts = governance(world)
    assert sum("webhook-by-non-admin" in t and "Change needs attention" in t for t in texts) == 1
    summaries = [t for t in texts if "Many changes at once" in t]
    assert len(summaries) == 1 and f"made {n} webhook create changes" in summaries[0], summaries
    await decided_once(world)


# ---- failed controls --------------------------------------------------------------------------


async def test_a_refused_revert_is_a_failed_control_and_is_retried(world):
    g = world.guild
    world.sb.faults.fail(
        method="DELETE", path=ROLE_ROUTE, status=403, code=50013, message="Missing Permissions", times=None
    )
    await world.sb.admin.add_role(g, "erin", "deployers")
    await until_decided(world, "jit-role-by-hand", 2)
    assert g.member("erin").has_role("deployers")
    assert [e.outcome for e in await entries(world, rule="jit-role-by-hand")] == ["blocked", "revert-failed"]
    assert any("Control failed" in t and "403" in t for t in governance(world)), governance(world)
    world.sb.faults.clear()
    await world.run_due()  # the sweep retries refused reverts
    await world.eventually(lambda: not g.member("erin").has_role("deployers"), what="the retried revert")
    await settled(world)
    assert [e.outcome for e in await entries(world, rule="jit-role-by-hand")] == [
        "blocked",
        "revert-failed",
        "reverted",
    ]


# ---- approve: reverted now, re-applied through the usual approval card ------------------------


async def test_a_hand_given_jit_role_can_be_adopted_as_a_request(db_url, clock):
    adopt = {
        "id": "jit-role-by-hand",
        "description": "JIT roles given by hand need the scope's approvers.",
        "when": {"event": "member_role_update", "role_is_jit": True},
        "outcome": "approve",
    }
    async with SandboxWorld(audit_policy(rules=[adopt]), database_url=db_url, clock=clock) as w:
        g = w.add_guild(ACME)
        await w.start_bot()
        erin = g.member("erin")
        await w.sb.admin.add_role(g, erin, "deployers")
        await w.eventually(lambda: not erin.has_role("deployers"), what="the revert")
        card = await w.sb.wait_for_message(g.channel("approvals"), "Access request #1")
        assert "Adopted from audit-log entry" in card.text
        await w.sb.click(g.member("bob"), card, "Approve")
        await w.sb.click(g.member("carol"), card, "Approve")
        assert erin.has_role("deployers")  # given back by Warden, as a grant that ends on time
        await settled(w)
        outcomes = [(e.rule, e.outcome) for e in await entries(w)]
        assert ("jit-role-by-hand", "approval-required") in outcomes
        assert ("jit-role-by-hand", "reverted") in outcomes
        assert [o for _, o in outcomes].count("granted") == 1
        assert not any(rule == "jit-role-by-hand" and o == "blocked" for rule, o in outcomes)
        # Warden's own re-grant is not drift.
        assert len([o for r, o in outcomes if r == "jit-role-by-hand"]) == 2
        texts = [m.text for m in w.sb.messages(g.channel("governance"))]
        assert any("Change reverted pending approval" in t for t in texts)
        w.sb.conformance.assert_ok()


# ---- the governance channel unavailable -------------------------------------------------------

MESSAGES_ROUTE = "/channels/{channel_id}/messages"


async def test_governance_channel_down_keeps_decisions_and_posts_the_backlog_summarised(world, caplog):
    g = world.guild
    world.sb.faults.fail(
        method="POST", path=MESSAGES_ROUTE, status=403, code=50013, message="Missing Permissions", times=None
    )
    n = 12
    for i in range(n):  # separate changes, each narrated on its own (no burst)
        world.sb._audit(g, 9000 + i, g.owner.id, g.id)
        await until_decided(world, "unclassified", i + 1)
        world.clock.advance(dt.timedelta(seconds=11))
    assert len(await entries(world, rule="unclassified")) == n  # the ledger has every decision
    assert governance(world) == []
    doctor = await world.sb.slash(g, g.owner, "warden doctor")
    assert f"{n} narrative(s) could not be posted to the governance channel" in doctor.text, doctor.text
    with caplog.at_level("WARNING", logger="warden.startup"):
        await world.restart_bot()  # the start-up report says so too
        await world.eventually(
            lambda: any(
                "could not be posted to the governance channel" in r.getMessage() for r in caplog.records
            ),
            what="the start-up report",
        )
    world.sb.faults.clear()
    world.clock.advance(dt.timedelta(minutes=15))  # past the back-off
    await settled(world)
    texts = governance(world)
    assert len(texts) == 1 and f"{n} decisions waited for this channel" in texts[0], texts
    doctor = await world.sb.slash(g, g.owner, "warden doctor")
    assert "could not be posted" not in doctor.text


# ---- scheduled checkpoints --------------------------------------------------------------------


async def test_scheduled_checkpoint_is_written_posted_and_catches_a_cut_tail(db_url, clock, tmp_path):
    out = tmp_path / "checkpoints"
    tuning = sandbox_tuning(checkpoint_path=out, checkpoint_seconds=60)
    async with SandboxWorld(audit_policy(), database_url=db_url, clock=clock, tuning=tuning) as w:
        g = w.add_guild(ACME)
        await w.start_bot()
        await w.sb.admin.add_role(g, "erin", "deployers")
        await until_decided(w, "jit-role-by-hand", 2)
        checkpoint = (
            await w.bot.services.jobs.checkpoint()
        )  # what the scheduler runs every checkpoint_seconds
        files = list(out.glob("*.json"))
        assert len(files) == 1 and checkpoint.entries == len(await entries(w))
        assert any(m.text.startswith("Ledger checkpoint:") for m in w.sb.messages(g.channel("governance")))
        async with w.bot.session_factory() as s:
            assert (await verify_chain(s, w.signer.public_key, checkpoints=read_checkpoints([out]))).ok
        async with w.bot.session_factory() as s, s.begin():  # someone cuts the newest entry off
            newest = await s.scalar(select(LedgerEntry).order_by(LedgerEntry.id.desc()).limit(1))
            await s.execute(delete(NarrativeOutbox).where(NarrativeOutbox.entry_id == newest.id))
            await s.delete(newest)
        async with w.bot.session_factory() as s:
            report = await verify_chain(s, w.signer.public_key, checkpoints=read_checkpoints([out]))
        assert not report.ok and any("checkpoint" in p for p in report.problems), report.problems


async def test_a_gap_longer_than_discords_retention_is_said_in_the_narrative(world):
    g = world.guild
    await world.stop_bot()
    world.clock.advance(dt.timedelta(days=46))  # Discord keeps audit-log entries 45 days
    await world.sb.admin.add_role(g, "erin", "deployers")
    await world.start_bot()
    assert not g.member("erin").has_role("deployers")  # what is still in the log is caught up
    await settled(world)
    gap = await entries(world, rule="audit-log-gap")
    assert [e.outcome for e in gap] == ["alert"]
    assert "46 days" in gap[0].reason
    assert any("audit-log-gap" in t and "45 days" in t for t in governance(world)), governance(world)


async def test_a_revert_whose_target_is_already_gone_counts_as_done(world):
    g = world.guild
    world.sb.faults.fail(method="DELETE", path="/webhooks/{webhook_id}", status=404, code=10015, times=1)
    hook = await world.sb.admin.create_webhook(g, "incident", "gone-soon")
    await until_decided(world, "webhook-in-private-channel", 2)
    assert [e.outcome for e in await entries(world, rule="webhook-in-private-channel")] == [
        "blocked",
        "reverted",
    ]
    assert await world.bot.services.audit.listener.pending_reverts(g.id) == []
    assert hook in g.webhooks  # the fault stood in for someone deleting it first
