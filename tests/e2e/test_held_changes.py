"""Held changes end to end: a dangerous bot added to the sandbox is quarantined by the default rule
``dangerous-bot-quarantined`` (outcome ``approve``), an Approve / Deny card is posted to the
approvals channel, and one click by one of the server's admins restores it through Warden."""

from __future__ import annotations

import asyncio
import datetime as dt
import tomllib
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import HeldChange
from bot.policy import parse_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld
from sandbox.models import DEFAULT_BOT_PERMISSIONS
from tests.helpers import entries, governance, settled

RULE = "dangerous-bot-quarantined"
ADMINISTRATOR = 1 << 3
KICK_MEMBERS = 1 << 1
#: Discord lets a bot give a role only permissions it holds itself (unless it has Administrator): to
#: restore a bot's Administrator, Warden's own role must hold it. Here it does.
ACME_WARDEN_ADMIN = {**ACME, "bot_permissions": [*DEFAULT_BOT_PERMISSIONS, "administrator"]}


def held_policy(**guild: Any) -> Any:
    """config.example.toml with only Warden's default rules; sec-leads (bob, carol) are the admins."""
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data.pop("rule", None)
    data["guild"]["acme"] |= {"admins": ["sec-leads"], **guild}
    return parse_policy(data)


@pytest.fixture
async def world(db_url, clock):
    async with SandboxWorld(held_policy(pending_ttl="2h"), database_url=db_url, clock=clock) as w:
        w.add_guild(ACME_WARDEN_ADMIN)
        await w.start_bot()
        yield w
        w.sb.conformance.assert_ok()


async def held_rows(world: SandboxWorld) -> list[HeldChange]:
    async with world.bot.session_factory() as s:
        return list(await s.scalars(select(HeldChange).order_by(HeldChange.id)))


def state(bot: Any, managed: Any) -> tuple[frozenset[int], int]:
    """The bot's roles and its managed role's permissions, as the sandbox holds them."""
    return frozenset(r.id for r in bot.roles), managed.permissions


async def quarantine(world: SandboxWorld) -> tuple[Any, Any, tuple[frozenset[int], int], Any]:
    """A bot with Administrator (and Kick Members) joins and is given another role: Warden quarantines
    it. Returns the bot, its managed role, its state before the quarantine, and the held change card."""
    g = world.guild
    raider = await world.sb.admin.add_bot(g, "raid-bot", ["administrator", "kick_members"])
    managed = next(r for r in g.roles if r.managed and r.bot_id == raider.id)
    await world.sb.admin.add_role(g, raider, "engineers", actor=g.member("bob"))
    before = (frozenset({managed.id, g.role("engineers").id}), ADMINISTRATOR | KICK_MEMBERS)
    await world.eventually(lambda: not managed.permissions & ADMINISTRATOR, what="the quarantine")
    card = await world.sb.wait_for_message(g.channel("approvals"), "Held change #1")
    await settled(world)
    return raider, managed, before, card


async def test_an_admin_restores_a_quarantined_bot_with_one_click(world):
    g = world.guild
    raider, managed, before, card = await quarantine(world)
    (held,) = await held_rows(world)
    # Quarantined: its other roles are gone and the managed role (which Discord never lets anyone take
    # from it) holds no permission.
    assert state(raider, managed) == (frozenset({managed.id}), 0)
    assert {a["kind"] for a in held.reapply} == {"add_member_role", "edit_role_permissions"}
    assert "Approve restores" in card.text and "Who may approve" in card.text
    assert any("Change reverted — approvers can restore it" in t for t in governance(world))

    out = await world.sb.click(g.member("bob"), card, "Approve")
    assert out.ephemeral and "Warden restored it" in out.all_text, out.all_text
    await world.eventually(lambda: state(raider, managed) == before, what="the restore")
    await settled(world)

    assert [e.outcome for e in await entries(world, rule=RULE)] == [
        "approval-required",
        "reverted",
        "change-restored",
    ]
    restored = (await entries(world, outcome="change-restored"))[0]
    assert restored.actor_id == g.member("bob").id
    assert restored.proof["approved_by"] == g.member("bob").id
    assert restored.proof["held_change_id"] == held.id and restored.proof["restored"]
    assert any("Reverted change restored by an admin" in t for t in governance(world)), governance(world)
    edited = await world.sb.wait_for_message(g.channel("approvals"), "Approved by")
    assert "restored" in edited.text
    assert all(b.get("disabled") for b in edited.buttons())
    # Warden's restore is in the audit log under its own reason, and is not decided as drift.
    mine = [e for e in world.sb.audit_log(g) if (e.get("reason") or "").startswith("Warden restore")]
    assert mine and all(e["user_id"] == str(world.sb.bot_user.id) for e in mine)
    assert len(await entries(world, rule=RULE)) == 3  # no decision about Warden's own restore
    ok, problems = await world.ledger_verifies()
    assert ok, problems


async def test_a_click_by_someone_who_is_not_an_admin_is_refused_and_changes_nothing(world):
    g = world.guild
    raider, managed, before, card = await quarantine(world)
    quarantined = state(raider, managed)
    count = len(await entries(world))
    out = await world.sb.click(g.member("alice"), card, "Approve")
    assert out.ephemeral and "Only the server's admins" in out.text, out.text
    out = await world.sb.click(g.member("alice"), card, "Deny")
    assert out.ephemeral and "Only the server's admins" in out.text, out.text
    # The owner added the bot: they may not approve their own change (another admin must).
    out = await world.sb.click(g.owner, card, "Approve")
    assert out.ephemeral and "another admin must" in out.text, out.text
    await settled(world)
    assert state(raider, managed) == quarantined != before
    assert len(await entries(world)) == count
    assert [h.status for h in await held_rows(world)] == ["pending"]


async def test_deny_keeps_the_bot_quarantined(world):
    g = world.guild
    raider, managed, before, card = await quarantine(world)
    quarantined = state(raider, managed)
    out = await world.sb.click(g.member("carol"), card, "Deny")
    assert out.ephemeral and "stays reverted" in out.all_text, out.all_text
    await settled(world)
    assert [e.outcome for e in await entries(world, rule=RULE)][-1] == "restore-denied"
    assert any("Restore denied" in t for t in governance(world))
    edited = await world.sb.wait_for_message(g.channel("approvals"), "Denied by")
    assert all(b.get("disabled") for b in edited.buttons())
    # A late Approve (a stale card) is refused and restores nothing.
    late = await world.sb.click(g.member("bob"), card, custom_id="warden:held:1:approve", forged=True)
    assert "already denied" in late.text, late.text
    await settled(world)
    assert state(raider, managed) == quarantined != before


async def test_two_admins_approving_at_once_restore_once(world):
    g = world.guild
    raider, managed, before, card = await quarantine(world)
    outs = await asyncio.gather(
        world.sb.click(g.member("bob"), card, "Approve"),
        world.sb.click(g.member("carol"), card, "Approve"),
    )
    texts = sorted(o.all_text for o in outs)
    assert sum("Warden restored it" in t for t in texts) == 1, texts
    assert sum("already approved" in t for t in texts) == 1, texts
    await world.eventually(lambda: state(raider, managed) == before, what="the restore")
    await settled(world)
    assert len(await entries(world, outcome="change-restored")) == 1
    (held,) = await held_rows(world)
    restores = [e for e in world.sb.audit_log(g) if (e.get("reason") or "").startswith("Warden restore")]
    assert len(restores) == len(held.reapply)  # each mutation once


async def test_nobody_deciding_expires_it_and_it_stays_quarantined(world):
    g = world.guild
    raider, managed, before, card = await quarantine(world)
    quarantined = state(raider, managed)
    await world.advance(dt.timedelta(hours=1))
    assert [h.status for h in await held_rows(world)] == ["pending"]
    await world.advance(dt.timedelta(hours=1, minutes=1))  # past the guild's pending_ttl (2h)
    await settled(world)
    assert [h.status for h in await held_rows(world)] == ["expired"]
    assert [e.outcome for e in await entries(world, rule=RULE)][-1] == "restore-expired"
    assert any("Restore expired" in t for t in governance(world))
    edited = await world.sb.wait_for_message(g.channel("approvals"), "Expired")
    assert all(b.get("disabled") for b in edited.buttons())
    late = await world.sb.click(g.member("bob"), card, custom_id="warden:held:1:approve", forged=True)
    assert "expired" in late.text, late.text
    await world.run_due()
    assert state(raider, managed) == quarantined != before
    assert len(await entries(world, outcome="restore-expired")) == 1  # expired once


async def test_the_card_still_works_after_a_restart(world):
    g = world.guild
    raider, managed, before, card = await quarantine(world)
    await world.restart_bot()
    out = await world.sb.click(g.member("bob"), card, "Approve")
    assert "Warden restored it" in out.all_text, out.all_text
    await world.eventually(lambda: state(raider, managed) == before, what="the restore after a restart")
    await settled(world)
    assert len(await entries(world, outcome="change-restored")) == 1


async def test_a_restore_discord_refuses_is_a_failed_control_on_the_card_and_in_the_narrative(db_url, clock):
    """Warden without Administrator cannot give it back (Discord refuses with 50013): the rest is
    restored, and the refusal is a failed control in the ledger, the narrative and on the card."""
    async with SandboxWorld(held_policy(), database_url=db_url, clock=clock) as w:
        g = w.add_guild(ACME)
        await w.start_bot()
        raider, managed, _, card = await quarantine(w)
        out = await w.sb.click(g.member("bob"), card, "Approve")
        assert "Discord refused part of the restore" in out.all_text and "50013" in out.all_text, out.all_text
        await settled(w)
        assert not managed.permissions & ADMINISTRATOR  # Discord did not let Warden give it back
        assert g.role("engineers") in raider.roles  # what Discord accepted is back
        failed = (await entries(w, rule=RULE))[-1]
        assert failed.outcome == "restore-failed" and failed.proof["failed"]
        assert failed.proof["restored"]
        texts = [m.text for m in w.sb.messages(g.channel("governance"))]
        assert any("Control failed: restore not complete" in t and "403" in t for t in texts), texts
        edited = await w.sb.wait_for_message(g.channel("approvals"), "refused part of the restore")
        assert all(b.get("disabled") for b in edited.buttons())
        w.sb.conformance.assert_ok()
