"""Dormant webhooks, end to end through the sandbox in virtual time: a webhook nobody has posted
through for ``webhook_dormant_after`` gets a one-item attestation review of its own; its owner keeps
it with one click, or it is deleted at the review's deadline and restorable within the grace period.
A webhook in use is never asked about."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.db.models import AttestCampaign, AttestItem, Identity, LedgerEntry
from bot.policy import AttestationPolicy, load_policy
from sandbox.harness import EXAMPLE_CONFIG
from tests.helpers import until

DORMANT = AttestationPolicy(
    every=dt.timedelta(0),  # no scheduled campaign: only the dormancy rule asks
    deadline=dt.timedelta(days=7),
    reminder=dt.timedelta(days=2),
    on_missed="alert",  # a dormant webhook is deleted at its review's deadline all the same
    grace=dt.timedelta(days=7),
    webhook_dormant_after=dt.timedelta(days=30),
)


@pytest.fixture
def policy():
    example = load_policy(EXAMPLE_CONFIG)
    return example.model_copy(update={"attestation": DORMANT, "rules": ()})


async def rows(world, model, *where):
    async with world.bot.session_factory() as s:
        return list((await s.scalars(select(model).where(*where).order_by(model.id))).all())


def asked(world, who, name: str) -> list:
    return [m for m in world.sb.dms(who) if name in m.text and "Please attest" in m.text]


async def test_dormant_webhooks_are_reviewed_kept_or_deleted_and_restorable(world):
    g, sb, admin = world.guild, world.sb, world.sb.admin
    owner = g.owner
    bob, carol, dave = (g.member(n) for n in ("bob", "carol", "dave"))
    await admin.create_webhook(g, "approvals", "ci-hook", actor=carol)  # owners: their creators
    await admin.create_webhook(g, "approvals", "old-hook", actor=bob)
    busy = await admin.create_webhook(g, "approvals", "busy-hook", actor=dave)
    await sb.slash(g, owner, "warden inventory")  # the inventory learns the three webhooks

    # 20 days on, busy-hook posts; nothing is dormant yet, so nobody is asked.
    await world.advance(dt.timedelta(days=20))
    posted_at = world.clock.now()
    await admin.post_as_webhook(g, busy)

    async def busy_activity():
        (row,) = await rows(world, Identity, Identity.name == "busy-hook")
        return row.last_activity_at

    await until(busy_activity, posted_at)
    assert await rows(world, AttestCampaign) == []

    # Day 31: ci-hook and old-hook have had no activity for 30 days; busy-hook posted 11 days ago.
    await world.advance(dt.timedelta(days=11))
    campaigns = await rows(world, AttestCampaign)
    assert [c.kind for c in campaigns] == ["dormancy", "dormancy"]
    assert {i.name for i in await rows(world, AttestItem)} == {"ci-hook", "old-hook"}
    keep_dm = asked(world, carol, "ci-hook")[-1]
    assert "dormant" in keep_dm.embeds[0]["description"]
    assert [b["label"] for b in keep_dm.buttons()] == ["Still needed", "Revoke", "Transfer"]
    assert asked(world, bob, "old-hook") and not asked(world, dave, "busy-hook")

    # Another sweep does not ask again about what is already under review.
    await world.advance(dt.timedelta(hours=1))
    assert len(await rows(world, AttestCampaign)) == 2 and len(asked(world, carol, "ci-hook")) == 1

    # carol attests ci-hook; bob ignores his DM.
    out = await sb.click(carol, keep_dm, "Still needed")
    assert "attested as still needed" in out.text, out.text

    # The deadline: old-hook is deleted, ci-hook and busy-hook stay.
    await world.advance(dt.timedelta(days=7))
    await world.settle()
    assert {w.name for w in g.webhooks} == {"ci-hook", "busy-hook"}
    await sb.wait_for_message(g.channel("governance"), contains="old-hook")
    card = next(
        m for m in sb.messages(g.channel("governance")) if m.embeds and "Removed:" in m.embeds[0]["title"]
    )
    assert "old-hook" in card.embeds[0]["title"]
    removed_dm = [m for m in sb.dms(bob) if "old-hook" in m.text and "nobody attested" in m.text]
    assert removed_dm, [m.text for m in sb.dms(bob)]
    by_name = {i.name: i for i in await rows(world, AttestItem)}
    assert by_name["ci-hook"].status == "attested" and by_name["old-hook"].status == "removed"

    # An admin restores it with one click within the grace period: same name, same channel.
    restored = await sb.click(owner, card, "Restore")
    assert "Restored" in restored.text, restored.text
    back = [w for w in g.webhooks if w.name == "old-hook"]
    assert back and back[0].channel_id == g.channel("approvals").id

    # busy-hook keeps posting and is never asked about; ci-hook, attested, is not asked again
    # until a full period has passed since its review.
    for _ in range(3):
        await world.advance(dt.timedelta(days=7))
        await admin.post_as_webhook(g, busy)
    assert not asked(world, dave, "busy-hook")
    assert not await rows(world, AttestItem, AttestItem.name == "busy-hook")
    assert len(asked(world, carol, "ci-hook")) == 1
    status = await sb.slash(g, owner, "warden attest status")
    assert status.text.count("dormant-webhook review") == 2, status.text

    async with world.bot.session_factory() as s:
        entries = (await s.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all()
    got = [(e.outcome, e.rule) for e in entries]
    assert got.count(("attestation-started", "attestation.webhook_dormant_after")) == 2, got
    for outcome in ("attested", "attestation-missed", "access-remediated", "access-restored"):
        assert outcome in [o for o, _ in got], (outcome, got)
    await world.settle()
    titles = [m.embeds[0]["title"] for m in sb.messages(g.channel("governance")) if m.embeds]
    assert "Attestation campaign started" in titles and "Unattested access removed" in titles
    ok, problems = await world.ledger_verifies()
    assert ok, problems


async def test_an_unowned_dormant_webhook_is_escalated_at_once(world):
    g, sb, admin = world.guild, world.sb, world.sb.admin
    hook = await admin.create_webhook(g, "approvals", "orphan-hook", actor=g.member("carol"))
    hook.creator = None  # Discord names no creator (e.g. the account was deleted): nobody owns it
    await sb.slash(g, g.owner, "warden inventory")
    (row,) = await rows(world, Identity, Identity.name == "orphan-hook")
    assert row.owner_id is None

    await world.advance(dt.timedelta(days=30))
    (item,) = await rows(world, AttestItem)
    assert item.name == "orphan-hook" and item.escalation == "nobody owns it"
    await world.settle()
    escalated = [
        m
        for m in sb.messages(g.channel("governance"))
        if m.embeds and m.embeds[0]["title"] == "Attestation escalated"
    ]
    assert escalated and "orphan-hook" in str(escalated[-1].embeds[0]), escalated

    # Nobody sets an owner by the deadline: it is deleted.
    await world.advance(dt.timedelta(days=7))
    assert "orphan-hook" not in {w.name for w in g.webhooks}
    (item,) = await rows(world, AttestItem)
    assert item.status == "removed" and item.answer == "missed"


async def test_a_full_campaign_leaves_a_dormant_webhook_review_alone(world):
    g, sb, admin = world.guild, world.sb, world.sb.admin
    carol = g.member("carol")
    await admin.create_webhook(g, "approvals", "ci-hook", actor=carol)
    await sb.slash(g, g.owner, "warden inventory")
    await world.advance(dt.timedelta(days=30))
    review_dm = asked(world, carol, "ci-hook")[-1]

    # An admin starts a full campaign: it neither supersedes the review nor asks about ci-hook twice.
    out = await sb.slash(g, g.owner, "warden attest start")
    assert "started" in out.text, out.text
    review, full = await rows(world, AttestCampaign)
    assert (review.kind, full.kind) == ("dormancy", "campaign") and review.closed_at is None
    assert [i.campaign_id for i in await rows(world, AttestItem, AttestItem.name == "ci-hook")] == [review.id]
    assert len(asked(world, carol, "ci-hook")) == 1
    kept = await sb.click(carol, review_dm, "Still needed")
    assert "attested as still needed" in kept.text, kept.text
