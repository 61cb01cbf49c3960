"""Attestation campaigns end to end: owners answer in their DMs through the sandbox, in virtual time."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import select

from bot.attest.report import campaign_report
from bot.db.models import AccessToken, AttestItem, LedgerEntry, TokenStatus
from bot.ledger import export_evidence, verify_export
from bot.policy import AttestationPolicy, Rule, RuleCondition, load_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG

ATTEST = AttestationPolicy(
    every=dt.timedelta(days=30),
    deadline=dt.timedelta(days=7),
    reminder=dt.timedelta(days=2),
    on_missed="remediate",
    grace=dt.timedelta(days=7),
    include_standing_roles=True,
)


# The audit listener's default rule jit-role-by-hand reverts a scope's role held without a grant;
# a server that keeps standing holders allows them with a rule like this one, and reviews them.
STANDING_ALLOWED = Rule(
    id="standing-holders-allowed",
    when=RuleCondition(event=frozenset({"member_role_update"}), role_is_jit=True),
    outcome="allow",
)


@pytest.fixture
def policy():
    # Only that rule: the bots this test invites are not what it is about.
    example = load_policy(EXAMPLE_CONFIG)
    return example.model_copy(update={"attestation": ATTEST, "rules": (STANDING_ALLOWED,)})


@pytest.fixture
def acme_spec():
    """acme, where dave has held deployers since before Warden (standing access, not a grant)."""
    spec = copy.deepcopy(ACME)
    next(m for m in spec["members"] if m["name"] == "dave")["roles"].append("deployers")
    return spec


async def items(world) -> dict[str, AttestItem]:
    async with world.bot.session_factory() as s:
        rows = (await s.scalars(select(AttestItem).order_by(AttestItem.id))).all()
    return {r.name: r for r in rows}


async def outcomes(world) -> list[str]:
    async with world.bot.session_factory() as s:
        return list((await s.scalars(select(LedgerEntry.outcome).order_by(LedgerEntry.id))).all())


def dm_about(world, who, name: str, contains: str = "Please attest"):
    found = [m for m in world.sb.dms(who) if name in m.text and contains in m.text]
    assert found, f"no DM to {who.name} about {name!r}: {[m.text[:80] for m in world.sb.dms(who)]}"
    return found[-1]


async def test_a_thirty_day_campaign(world, record_owner, tmp_path):
    g, sb, admin = world.guild, world.sb, world.sb.admin
    owner = g.owner
    alice, bob, carol, dave, erin = (g.member(n) for n in ("alice", "bob", "carol", "dave", "erin"))
    erin.dms_open = False
    ops_bot = await admin.add_bot(g, "ops-bot", ["view_channel"], actor=owner)
    old_bot = await admin.add_bot(g, "old-bot", ["view_channel"], actor=owner)
    await admin.add_role(g, old_bot, "engineers", actor=owner)
    await admin.add_role(g, ops_bot, "on-call", actor=owner)
    await admin.create_webhook(g, "approvals", "alerts", actor=carol)  # carol is its inferred owner
    await record_owner("ci-bot", "alice")
    await record_owner("ops-bot", "dave")
    await record_owner("old-bot", "erin")

    out = await sb.slash(g, owner, "warden attest start")
    assert "Attestation campaign #1 started" in out.text, out.text
    by_name = await items(world)
    assert {"ci-bot", "ops-bot", "old-bot", "alerts"} <= set(by_name), by_name.keys()
    standing = next(i for n, i in by_name.items() if n.startswith("dave holds"))
    assert standing.kind == "standing" and standing.owner_id is None

    # Each owner has a DM per item with the three buttons; standing access has no Transfer.
    ci = dm_about(world, alice, "ci-bot")
    assert [b["label"] for b in ci.buttons()] == ["Still needed", "Revoke", "Transfer"]
    review = dm_about(world, bob, "dave")
    assert [b["label"] for b in review.buttons()] == ["Still needed", "Revoke"]
    assert not [m for m in sb.dms(dave) if "dave holds" in m.text]  # never asked about his own access
    # erin's DMs are closed (Discord 50007): escalated at once, not skipped.
    assert "50007" in (by_name["old-bot"].escalation or "")

    # One attest.
    out = await sb.click(alice, ci, "Still needed")
    assert "attested as still needed" in out.text
    again = await sb.click(alice, ci, "Revoke")  # the DM is stale now
    assert "no longer current" in again.text
    assert g.member("ci-bot").has_role("engineers")

    # A reviewer never attests their own access; another approver does.
    forged = await sb.click(
        dave, dm_about(world, dave, "ops-bot"), custom_id=f"warden:attest:{standing.id}:keep", forged=True
    )
    assert "never attests their own access" in forged.text
    assert "attested" in (await sb.click(bob, review, "Still needed")).text

    # One revoke: ops-bot loses its roles at once, and the removal is restorable.
    out = await sb.click(dave, dm_about(world, dave, "ops-bot"), "Revoke")
    assert "is removed" in out.text, out.text
    assert not g.member("ops-bot").has_role("on-call")
    assert [r for r in g.member("ops-bot").roles if r.managed]  # its integration role stays

    # Someone else's button does nothing.
    alerts = (await items(world))["alerts"]
    forged = await sb.click(bob, review, custom_id=f"warden:attest:{alerts.id}:keep", forged=True)
    assert "Only the current owner" in forged.text

    # Five days pass: the reminder reaches the owners still to answer.
    await world.advance(dt.timedelta(days=5, minutes=1))
    await sb.wait_for_message(carol, contains="Reminder: still waiting")
    reminder = dm_about(world, carol, "alerts", contains="Reminder")

    # One transfer: carol hands the webhook to dave, who accepts in his own DMs.
    picker = await sb.click(carol, reminder, "Transfer")
    assert picker.ephemeral and "Who should own it" in picker.text
    asked = await sb.select(carol, picker, [dave])
    assert "Asked" in asked.text, asked.text
    offer = await sb.wait_for_message(dave, contains="wants to hand")
    stale = await sb.click(carol, reminder, "Still needed")
    assert "no longer current" in stale.text
    taken = await sb.click(dave, offer, "Accept")
    assert "You now own" in taken.text

    # The deadline: old-bot (nobody could answer) is escalated and its roles removed.
    await world.advance(dt.timedelta(days=2))
    await world.settle()
    assert not g.member("old-bot").has_role("engineers")
    card = await sb.wait_for_message(g.channel("governance"), contains="Removed: Bot old-bot")
    titles = [m.embeds[0]["title"] for m in sb.messages(g.channel("governance")) if m.embeds]
    for title in (
        "Attestation campaign started",
        "Access attested: still needed",
        "Access revoked by its owner",
        "Ownership transfer",
        "Attestation escalated",
        "Attestation missed",
        "Unattested access removed",
        "Attestation campaign closed",
    ):
        assert title in titles, (title, titles)

    # A one-click restore by an admin, within the grace period.
    not_admin = await sb.click(alice, card, "Restore")
    assert "Only a server admin" in not_admin.text
    restored = await sb.click(owner, card, "Restore")
    assert "Restored" in restored.text, restored.text
    assert g.member("old-bot").has_role("engineers")
    await world.settle()
    assert "Removed access restored" in [m.embeds[0]["title"] for m in sb.messages(g.channel("governance"))]

    status = await sb.slash(g, owner, "warden attest status")
    assert "Campaign #1" in status.text and "closed" in status.text

    by_name = await items(world)
    assert by_name["alerts"].owner_id == dave.id and by_name["alerts"].status == "attested"
    assert by_name["ops-bot"].status == "removed" and by_name["old-bot"].status == "restored"
    got = await outcomes(world)
    assert got.count("attested") == 3 and "remediation-failed" not in got
    ok, problems = await world.ledger_verifies()
    assert ok, problems

    # The evidence, as an auditor reads it.
    async with world.bot.session_factory() as s:
        text = await campaign_report(s, 1)
    rows = list(csv.DictReader(io.StringIO(text)))
    old = next(r for r in rows if r["name"] == "old-bot")
    assert old["answer"] == "missed" and old["status"] == "restored" and old["removed"]
    assert old["restored_by"] == str(owner.id) and old["ledger_entries"]
    # ... and every ledger entry it names is in the signed export, which verifies on its own.
    async with world.bot.session_factory() as s:
        out = await export_evidence(s, tmp_path / "evidence", world.signer)
    exported = {
        e["id"]: e["outcome"] for e in map(json.loads, (out / "ledger.jsonl").read_text().splitlines())
    }
    for row in rows:
        for entry_id in row["ledger_entries"].split():
            assert exported[int(entry_id)].startswith(("attest", "access-", "ownership", "remediation"))
    assert verify_export(out, world.signer.public_key_pem()).ok
    ci_row = next(r for r in rows if r["name"] == "ci-bot")
    assert ci_row["reviewed_by"] == str(alice.id) and ci_row["answer"] == "keep" and ci_row["answered_at"]


async def test_a_refused_removal_is_a_failed_control_and_retried(world, record_owner):
    g, sb = world.guild, world.sb
    await record_owner("ci-bot", "alice")
    await sb.slash(g, g.owner, "warden attest start")
    ci = dm_about(world, g.member("alice"), "ci-bot")
    sb.faults.fail("PATCH", "/guilds/{guild_id}/members/{user_id}", status=403, code=50013, times=10)
    out = await sb.click(g.member("alice"), ci, "Revoke")
    assert "Discord refused the removal" in out.text, out.text
    assert g.member("ci-bot").has_role("engineers")
    await world.settle()
    titles = [m.embeds[0]["title"] for m in sb.messages(g.channel("governance")) if m.embeds]
    assert "Remediation failed (control failed)" in titles
    sb.faults.clear()
    await world.advance(dt.timedelta(minutes=6))
    assert not g.member("ci-bot").has_role("engineers")
    assert (await items(world))["ci-bot"].status == "removed"


async def test_a_revoke_is_answered_once_removed_and_before_the_owners_dm(world, record_owner):
    g, sb = world.guild, world.sb
    alice, ci_bot = g.member("alice"), g.member("ci-bot")
    await record_owner("ci-bot", "alice")
    await sb.slash(g, g.owner, "warden attest start")
    ci = dm_about(world, alice, "ci-bot")
    before = len(sb.request_log)
    out = await sb.click(alice, ci, "Revoke")
    assert "is removed" in out.text, out.text
    sent = [(r.method, r.path) for r in list(sb.request_log)[before:]]
    answer = sent.index(("POST", f"/webhooks/{sb.application_id}/{out.record.token}"))
    removal = sent.index(("PATCH", f"/guilds/{g.id}/members/{ci_bot.id}"))
    told = sent.index(("POST", f"/channels/{sb.dm_channel(alice).id}/messages"))
    assert removal < answer < told  # the answer says it is removed; the owner's DM follows it
    assert dm_about(world, alice, "ci-bot", contains="Warden removed")


async def test_a_newer_campaign_makes_old_dms_stale_and_tokens_are_revoked(world, record_owner):
    g, sb = world.guild, world.sb
    await record_owner("ci-bot", "alice")
    async with world.bot.session_factory() as s, s.begin():
        s.add(
            AccessToken(
                guild_id=g.id,
                lookup_id="0123456789abcdef",
                secret_sha256="0" * 64,
                scope_id="deploy",
                subject_id=g.member("bob").id,
                status=TokenStatus.ACTIVE,
                created_at=world.clock.now(),
                expires_at=world.clock.now() + dt.timedelta(days=20),
                use_count=0,
            )
        )
    await sb.slash(g, g.owner, "warden attest start")
    first = dm_about(world, g.member("alice"), "ci-bot")
    token_dm = dm_about(world, g.member("bob"), "token")
    await sb.slash(g, g.owner, "warden attest start")
    out = await sb.click(g.member("alice"), first, "Revoke")
    assert "no longer current" in out.text and "newer campaign" in out.text
    assert g.member("ci-bot").has_role("engineers")
    assert "no longer current" in (await sb.click(g.member("bob"), token_dm, "Revoke")).text
    fresh = dm_about(world, g.member("bob"), "token")
    assert "item #" in fresh.text and fresh.id != token_dm.id
    assert "is removed" in (await sb.click(g.member("bob"), fresh, "Revoke")).text
    async with world.bot.session_factory() as s:
        token = (await s.scalars(select(AccessToken))).one()
    assert token.status == TokenStatus.REVOKED


async def test_without_the_policy_table_start_says_how_to_turn_it_on(tmp_path, db_url, clock):
    from sandbox.harness import SandboxWorld

    without = load_policy(EXAMPLE_CONFIG).model_copy(update={"attestation": None})
    async with SandboxWorld(without, database_url=db_url, clock=clock) as w:
        w.add_guild(ACME)
        await w.start_bot()
        out = await w.sb.slash(w.guild, w.guild.owner, "warden attest start")
        assert "add an [attestation] table" in out.text
        out = await w.sb.slash(w.guild, w.guild.member("alice"), "warden attest start")
        assert "Only server admins" in out.text


async def test_transfer_declined_bot_refused_and_the_grace_period_ends(world, record_owner):
    g, sb = world.guild, world.sb
    alice, bob = g.member("alice"), g.member("bob")
    await record_owner("ci-bot", "alice")
    await sb.slash(g, g.owner, "warden attest start")
    ci = dm_about(world, alice, "ci-bot")
    picker = await sb.click(alice, ci, "Transfer")
    refused = await sb.select(alice, picker, [g.member("ci-bot")])
    assert "must be a person" in refused.text
    mine = await sb.select(alice, picker, [alice])
    assert "You already own it" in mine.text
    await sb.select(alice, picker, [bob])
    offer = await sb.wait_for_message(bob, contains="wants to hand")
    accept_id = offer.buttons()[0]["custom_id"]
    foreign = await sb.click(alice, ci, custom_id=accept_id, forged=True)  # someone else's Accept
    assert "Only the member it was handed to" in foreign.text
    declined = await sb.click(bob, offer, "Decline")
    assert "You declined" in declined.text
    await sb.wait_for_message(alice, contains="declined")
    assert "no longer current" in (await sb.click(bob, offer, "Accept")).text
    # Declined: alice is asked again and still owns it; she misses the deadline, so it is removed.
    assert len([m for m in sb.dms(alice) if "Please attest" in m.text and "ci-bot" in m.text]) == 2
    await world.advance(dt.timedelta(days=7))
    assert not g.member("ci-bot").has_role("engineers")
    card = await sb.wait_for_message(g.channel("governance"), contains="Removed: Bot ci-bot")
    await world.advance(dt.timedelta(days=7))
    late = await sb.click(g.owner, card, "Restore")
    assert "grace period to restore" in late.text and "ended" in late.text
    assert not g.member("ci-bot").has_role("engineers")


async def test_alert_only_leaves_access_in_place(db_url, clock):
    from sandbox.harness import SandboxWorld

    alert = ATTEST.model_copy(update={"on_missed": "alert", "include_standing_roles": False})
    policy = load_policy(EXAMPLE_CONFIG).model_copy(update={"attestation": alert, "rules": ()})
    async with SandboxWorld(policy, database_url=db_url, clock=clock) as w:
        w.add_guild(ACME)
        await w.start_bot()
        await w.sb.slash(w.guild, w.guild.owner, "warden attest start")
        await w.advance(dt.timedelta(days=7))
        await w.settle()
        titles = [m.embeds[0]["title"] for m in w.sb.messages(w.guild.channel("governance")) if m.embeds]
        assert "Attestation missed" in titles and "Unattested access removed" not in titles
        assert w.guild.member("ci-bot").has_role("engineers")  # unowned, escalated, still in place
        status = await w.sb.slash(w.guild, w.guild.owner, "warden attest status")
        assert "1 missed" in status.text


async def test_the_schedule_starts_campaigns_a_period_after_the_last(world, record_owner):
    g, sb = world.guild, world.sb
    await record_owner("ci-bot", "alice")
    await world.advance(dt.timedelta(days=29))
    assert not sb.dms(g.member("alice"))
    await sb.slash(g, g.owner, "warden attest start")  # on demand, a day before the schedule
    await world.advance(dt.timedelta(days=2))
    status = await sb.slash(g, g.owner, "warden attest status")
    assert "Campaign #1" in status.text and "Campaign #2" not in status.text  # the schedule moved on
    await world.advance(dt.timedelta(days=28, hours=1))
    status = await sb.slash(g, g.owner, "warden attest status")
    assert "Campaign #2** — scheduled" in status.text, status.text


async def test_integrations_without_a_bot_are_attested_and_only_escalated(world):
    """An integration with no bot user is an item of its own; Warden never deletes one by itself."""
    g, sb, admin = world.guild, world.sb, world.sb.admin
    alice, bob = g.member("alice"), g.member("bob")
    await admin.add_bot(g, "ops-bot", ["view_channel"], actor=alice)  # its integration has a bot user
    await admin.add_bot(g, "old-bot", ["view_channel"], actor=alice)
    # An older bot whose integration lists no OAuth2 scopes is still known by its bot's permissions.
    next(i for i in g.integrations if i.name == "old-bot").scopes = []
    await admin.add_integration(g, "alice-stream", type="twitch", actor=alice)
    await admin.add_integration(
        g, "stats-app", type="discord", application=True, scopes=["applications.commands"], actor=bob
    )
    await admin.add_integration(g, "bob-videos", type="youtube", actor=bob)

    await sb.slash(g, g.owner, "warden attest start")
    by_name = await items(world)
    integrations = {n for n, i in by_name.items() if i.kind == "integration"}
    # A bot's integration (ops-bot, ci-bot, Warden's own) is reviewed through its bot, not twice.
    assert integrations == {"alice-stream", "stats-app", "bob-videos"}, integrations
    assert by_name["ops-bot"].kind == "bot" and by_name["old-bot"].kind == "bot"
    assert not [m for m in sb.dms(alice) if "Integration ops-bot" in m.text or "Integration old" in m.text]
    assert by_name["stats-app"].access.get("scopes") == ["applications.commands"]

    # Its owner (the member who added it) gets a DM with the three buttons, saying it is never deleted.
    stream = dm_about(world, alice, "Integration alice-stream")
    assert [b["label"] for b in stream.buttons()] == ["Still needed", "Revoke", "Transfer"]
    assert "never deletes an integration" in json.dumps(stream.embeds)
    assert "OAuth2 scopes `applications.commands`" in dm_about(world, bob, "Integration stats-app").text
    out = await sb.click(alice, stream, "Still needed")
    assert "attested as still needed" in out.text, out.text
    assert (await items(world))["alice-stream"].answered_by == alice.id

    # Revoke escalates to the governance channel as a control for a human; nothing is deleted.
    app = dm_about(world, bob, "Integration stats-app")
    out = await sb.click(bob, app, "Revoke")
    assert "admins have been asked to remove it by hand" in out.text, out.text
    assert "stats-app" in {i.name for i in g.integrations}

    # A missed deadline (on_missed = remediate) escalates without deleting.
    await world.advance(dt.timedelta(days=7, minutes=1))
    await world.settle()
    assert {"alice-stream", "stats-app", "bob-videos"} <= {i.name for i in g.integrations}
    by_name = await items(world)
    assert by_name["alice-stream"].status == "attested"
    assert by_name["stats-app"].status == "escalated" and by_name["stats-app"].answer == "revoke"
    assert by_name["bob-videos"].status == "missed" and by_name["bob-videos"].removed is None
    assert by_name["ops-bot"].status == "removing" or by_name["ops-bot"].status == "removed"
    governance = [m for m in sb.messages(g.channel("governance")) if m.embeds]
    started = next(
        json.dumps(m.embeds)
        for m in governance
        if "Attestation campaign started" in m.text + json.dumps(m.embeds)
    )
    assert "only ever escalated" in started, started
    escalated = [json.dumps(m.embeds) for m in governance if "bob-videos" in json.dumps(m.embeds)]
    assert any("cannot restore a deleted integration" in e for e in escalated), escalated
    revoked = [json.dumps(m.embeds) for m in governance if "stats-app" in json.dumps(m.embeds)]
    assert any("remove it by hand" in e for e in revoked), revoked
    assert not [m for m in governance if "Removed: Integration" in m.text]
    ok, problems = await world.ledger_verifies()
    assert ok, problems
