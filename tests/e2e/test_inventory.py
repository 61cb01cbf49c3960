"""`/warden inventory` and owners, through the sandbox: admins only, risk-sorted pages with persistent
buttons, `/warden owner set`, owners inferred from the audit log and confirmed by DM, and refused
presses (non-admin, another guild, stale, someone else's DM) that change nothing."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.db.models import Identity, OwnerSource
from sandbox.models import DEFAULT_BOT_PERMISSIONS

SCORE = re.compile(r"— risk (\d+)")


async def identities(world) -> dict[str, Identity]:
    async with world.bot.session_factory() as s:
        return {f"{r.kind}:{r.name}": r for r in (await s.execute(select(Identity))).scalars()}


def scores(outcome) -> list[int]:
    return [int(m) for m in SCORE.findall(outcome.text)]


async def test_inventory_is_paged_risk_sorted_and_for_admins_only(world):
    g = world.guild
    # Each adds a bot and its integration: 9 identities with ci-bot, Warden and Warden's integration.
    for i in range(3):
        await world.sb.admin.add_bot(g, f"helper-{i}", permissions=["manage_roles"] if i == 0 else None)

    refused = await world.sb.slash(g, g.member("alice"), "warden inventory")
    assert refused.ephemeral and "Only server admins" in refused.text

    first = await world.sb.slash(g, g.owner, "warden inventory")
    assert first.ephemeral
    assert "page 1 of 2" in first.text and "9 bots, webhooks, integrations and tokens" in first.text
    page1 = scores(first)
    assert len(page1) == 5 and page1 == sorted(page1, reverse=True)
    assert "manage_roles" in first.text or "privileged" in first.text  # a reason shown with its score
    assert "no owner" in first.text  # ci-bot was added by nobody Warden can name
    buttons = first.message.buttons()
    assert [b["label"] for b in buttons] == ["◀ Previous", "Next ▶"] and buttons[0].get("disabled")

    second = await world.sb.click(g.owner, first, "Next ▶")
    assert "page 2 of 2" in second.text
    page2 = scores(second)
    assert len(page2) == 4 and max(page2) <= min(page1)
    back = await world.sb.click(g.owner, second, "◀ Previous")
    assert "page 1 of 2" in back.text

    # A press by a non-admin (a forged or forwarded id), or for another guild, shows nothing.
    before = await identities(world)
    forged = await world.sb.click(g.member("alice"), first, custom_id=f"warden:inv:{g.id}:2", forged=True)
    assert "Only server admins" in forged.text and "page 2" not in forged.text
    foreign = await world.sb.click(g.owner, first, custom_id="warden:inv:42:2", forged=True)
    assert "another server" in foreign.text
    stale = await world.sb.click(g.owner, first, custom_id=f"warden:inv:{g.id}:9", forged=True)
    assert "pick a page from 1 to 2" in stale.text
    after = await identities(world)
    assert {k: (v.owner_id, v.last_seen_at) for k, v in before.items()} == {
        k: (v.owner_id, v.last_seen_at) for k, v in after.items()
    }


async def test_owner_set_and_inferred_owner_confirms_by_dm(world):
    g = world.guild
    bob, carol, dave, erin = (g.member(n) for n in ("bob", "carol", "dave", "erin"))
    await world.sb.admin.add_bot(g, "deploy-bot", actor=bob)
    await world.sb.admin.add_bot(g, "chat-bot", actor=carol)
    await world.sb.slash(g, g.owner, "warden inventory")  # refreshes: owners inferred from the audit log

    rows = await identities(world)
    deploy, chat = rows["bot:deploy-bot"], rows["bot:chat-bot"]
    assert (deploy.owner_id, deploy.owner_source) == (bob.id, OwnerSource.INFERRED)
    ask = await world.sb.wait_for_message(bob, contains="owner of bot **deploy-bot**")
    assert "deploy-bot" in ask.text and "added it" in ask.text

    # Someone else pressing bob's button (a forged id) is refused; nothing changes.
    custom_id = ask.buttons()[0]["custom_id"]
    carol_dm = await world.sb.wait_for_message(carol, contains="owner of bot **chat-bot**")
    foreign = await world.sb.click(carol, carol_dm, custom_id=custom_id, forged=True)
    assert "sent to someone else" in foreign.text
    assert (await identities(world))["bot:deploy-bot"].owner_source == OwnerSource.INFERRED

    done = await world.sb.click(bob, ask, "Yes, I own it")
    assert "You confirmed you own bot" in done.text
    assert all(b.get("disabled") for b in done.message.buttons())
    assert (await identities(world))["bot:deploy-bot"].owner_source == OwnerSource.CONFIRMED

    # An admin names another owner for chat-bot: carol's DM is stale and her press changes nothing.
    refused = await world.sb.slash(g, erin, "warden owner set", item=chat.id, member=dave)
    assert "Only server admins" in refused.text
    not_a_person = await world.sb.slash(
        g, g.owner, "warden owner set", item=chat.id, member=g.member("ci-bot")
    )
    assert "is a bot" in not_a_person.text
    set_ = await world.sb.slash(g, g.owner, "warden owner set", item=chat.id, member=dave)
    assert f"#{chat.id}" in set_.text and f"<@{dave.id}>" in set_.text and "set by an admin" in set_.text
    stale = await world.sb.click(carol, carol_dm, "Yes, I own it")
    assert "Only the owner Warden inferred" in stale.text
    row = (await identities(world))["bot:chat-bot"]
    assert (row.owner_id, row.owner_source, row.owner_set_by) == (dave.id, OwnerSource.EXPLICIT, g.owner.id)
    missing = await world.sb.slash(g, g.owner, "warden owner set", item=99999, member=dave)
    assert "There is no inventory item 99999" in missing.text

    # Both changes are ledger decisions with a narrative; the refused presses recorded nothing.
    await world.settle()
    owners = [m for m in world.sb.messages(g.channel("governance")) if "Owner recorded" in m.text]
    assert len(owners) == 2
    assert "inventory.owner.confirmed" in owners[0].text and f"<@{bob.id}>" in owners[0].text
    assert "inventory.owner.set" in owners[1].text and f"<@{dave.id}>" in owners[1].text
    ok, problems = await world.ledger_verifies()
    assert ok, problems


async def test_the_scheduled_refresh_infers_owners_without_a_command(world):
    g = world.guild
    hook = await world.sb.admin.create_webhook(g, "incident", "alerts", actor=g.member("carol"))
    assert await world.bot.services.jobs.refresh_inventory() == 1  # the job the scheduler runs hourly
    ask = await world.sb.wait_for_message(g.member("carol"), contains="owner of webhook **alerts**")
    assert "created it" in ask.text
    row = (await identities(world))["webhook:alerts"]
    assert row.external_id == str(hook.id) and row.owner_source == OwnerSource.INFERRED
    await world.sb.admin.delete_webhook(g, hook)
    await world.bot.services.jobs.refresh_inventory()
    assert (await identities(world))["webhook:alerts"].gone_at is not None  # gone, not listed
    page = await world.sb.slash(g, g.owner, "warden inventory")
    assert "alerts" not in page.text


async def test_a_read_discord_refuses_leaves_that_kind_as_recorded(world):
    g = world.guild
    await world.sb.admin.create_webhook(g, "incident", "alerts", actor=g.member("carol"))
    await world.sb.slash(g, g.owner, "warden inventory")
    assert (await identities(world))["webhook:alerts"].gone_at is None

    # Warden loses Manage Webhooks: webhooks cannot be listed, so none is marked gone; bots still refresh.
    warden_role = next(r for r in world.sb.bot_member(g).roles if r.managed)
    kept = [p for p in DEFAULT_BOT_PERMISSIONS if p != "manage_webhooks"]
    await world.sb.admin.set_role_permissions(g, warden_role, kept)
    await world.sb.admin.add_bot(g, "late-bot", actor=g.member("bob"))
    page = await world.sb.slash(g, g.owner, "warden inventory")
    assert "could not read everything" in page.text and "Manage Webhooks" in page.text
    rows = await identities(world)
    assert rows["webhook:alerts"].gone_at is None  # as last recorded, still listed
    assert "bot:late-bot" in rows  # the rest was refreshed
