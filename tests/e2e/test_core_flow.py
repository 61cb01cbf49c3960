"""The core flow, as people see it in Discord: request → approvals → grant → reminder → expiry."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from bot.db.models import AccessRequest, Grant, LedgerEntry
from tests.helpers import card_in, request


async def count(world, model) -> int:
    async with world.bot.session_factory() as s:
        return await s.scalar(select(func.count()).select_from(model))


async def test_request_two_approvals_grant_reminder_expiry(world):
    g = world.guild
    alice = g.member("alice")
    out = await request(world, "alice")
    assert out.ephemeral
    assert "Request #1 for `deploy` (2h) is waiting for approval: 2 approvals needed" in out.text

    card = card_in(world, 1)
    assert "Access request #1 — deploy" in card.text
    for expected in (f"<@{alice.id}>", "2h", "release 4.2", "0 of 2 needed"):
        assert expected in card.text
    assert [b["label"] for b in card.buttons()] == ["Approve", "Deny"]
    assert g.role("sec-leads").mention in card.text  # who may approve
    assert "Requester's roles" in card.text and g.role("engineers").mention in card.text

    first = await world.sb.click(g.member("bob"), card, "Approve")
    assert "counted (1 of 2)" in first.text
    card = card_in(world, 1)
    assert "1 of 2 needed" in card.text and f"approved by <@{g.member('bob').id}>" in card.text
    assert not alice.has_role("deployers")

    await world.sb.click(g.member("carol"), card, "Approve")
    assert alice.has_role("deployers")
    card = card_in(world, 1)
    assert "Granted until" in card.text
    assert all(b.get("disabled") for b in card.buttons())

    dm = await world.sb.wait_for_message(alice, contains="is yours")
    assert "deploy" in dm.text and str(g.member("carol").id) in dm.text and "<t:" in dm.text

    # The audit log names the grant and request.
    applied = "Warden grant #1 (request #1, scope deploy) applied: release 4.2"
    entry = next(
        e for e in world.sb.audit_log(g) if e["action_type"] == 25 and applied in (e.get("reason") or "")
    )

    # Reminder 15 minutes before the end; expiry at the end (the clock started at grant time).
    await world.advance(dt.timedelta(hours=1, minutes=46))
    await world.sb.wait_for_message(alice, contains="Reminder: your access **deploy**")
    assert alice.has_role("deployers")
    report = await world.advance(dt.timedelta(minutes=14))
    assert report.expired == 1 and report.removed == 1
    assert not alice.has_role("deployers")
    await world.sb.wait_for_message(alice, contains="has ended")
    assert "Expired" in card_in(world, 1).text

    await world.settle()
    narratives = world.sb.messages(g.channel("governance"))
    granted = next(m for m in narratives if m.embeds[0]["title"] == "Access granted")
    assert str(entry["id"]) in granted.text  # Discord's audit-log entry is part of the proof
    titles = " | ".join(m.embeds[0]["title"] for m in narratives)
    for outcome in ("Request", "Vote", "Approved", "granted", "expired"):
        assert outcome.lower() in titles.lower(), titles
    ok, problems = await world.ledger_verifies()
    assert ok, problems


async def test_deny_asks_for_a_reason_and_tells_the_requester(world):
    g = world.guild
    await request(world, "alice")
    card = card_in(world, 1)
    modal = await world.sb.click(g.member("bob"), card, "Deny")
    assert modal.modal is not None
    await world.sb.submit_modal(g.member("bob"), modal, reason="no change ticket")
    card = card_in(world, 1)
    assert f"Denied by <@{g.member('bob').id}>: no change ticket" in card.text
    dm = await world.sb.wait_for_message(g.member("alice"), contains="was denied")
    assert "no change ticket" in dm.text
    assert not g.member("alice").has_role("deployers")


async def test_refused_clicks_do_not_change_the_tally(world):
    g = world.guild
    await request(world, "alice")
    card = card_in(world, 1)
    out = await world.sb.click(g.member("erin"), card, "Approve")  # not an approver
    assert out.ephemeral and "Only" in out.text and "your click was not counted" in out.text
    out = await world.sb.click(g.member("alice"), card, "Approve")  # the requester
    assert "Only" in out.text  # alice is not an approver either
    await world.sb.click(g.member("bob"), card, "Approve")
    out = await world.sb.click(g.member("bob"), card, "Approve")  # second click
    assert "You already approved request #1" in out.text
    assert "1 of 2 needed" in card_in(world, 1).text
    forged = await world.sb.click(g.member("bob"), card, custom_id="warden:vote:999:approve", forged=True)
    assert "There is no request #999" in forged.text


async def test_self_approval_never_counts_even_for_an_approver(world, acme_spec):
    g = world.guild
    bob = g.member("bob")
    await world.sb.admin.add_role(g, bob, g.role("engineers"))
    out = await request(world, "bob")
    assert "waiting for approval" in out.text
    out = await world.sb.click(bob, card_in(world, 1), "Approve")
    assert "You cannot decide on your own request" in out.text
    assert "0 of 2 needed" in card_in(world, 1).text


async def test_bad_requests_are_refused_and_nothing_is_written(world):
    g = world.guild
    before = await count(world, AccessRequest)
    cases = [
        ({"scope": "nope"}, "There is no scope named `nope`"),
        ({"scope": "deploy", "duration": "9x"}, "is not a duration"),
        ({"scope": "deploy", "duration": "0m"}, "longer than zero"),
        ({"scope": "deploy", "duration": "9h"}, "at most 8h"),
        ({"scope": "deploy", "reason": ""}, "needs a reason"),
        ({"scope": "deploy", "reason": "x" * 401}, "limit is 400"),
        ({"scope": "bot-webhooks", "for": "alice"}, "must be a bot"),
        ({"scope": "deploy", "for": "ci-bot"}, "is for members, not bots"),
    ]
    for options, expected in cases:
        opts = {"duration": "1h", "reason": "why not", **options}
        if "for" in opts:
            opts["for"] = g.member(opts["for"])
        out = await world.sb.slash(g, g.member("alice"), "jit request", **opts)
        assert out.ephemeral, options
        assert expected in out.text, (options, out.text)
    out = await world.sb.slash(g, g.member("erin"), "jit request", scope="deploy", duration="1h", reason="x")
    assert "You may not request `deploy`" in out.text
    assert await count(world, AccessRequest) == before
    assert world.sb.messages(g.channel("approvals")) == []


async def test_role_above_the_bot_or_managed_is_refused_before_asking(world):
    g = world.guild
    deployers = g.role("deployers")
    deployers.position = 99  # an admin moved it above Warden's own role
    world.sb._role_update_event(g, deployers)
    await world.eventually(lambda: world.bot.get_guild(g.id).get_role(deployers.id).position == 99)
    out = await request(world, "alice")
    assert "not below Warden's highest role" in out.text and "50013" in out.text
    assert await count(world, AccessRequest) == 0


async def test_autocomplete_offers_only_what_the_member_may_request(world):
    g = world.guild
    choices = await world.sb.autocomplete(g, g.member("alice"), "jit request", focused="scope", scope="")
    values = {c["value"] for c in choices}
    assert values == {"deploy", "incident-room", "bot-webhooks", "deploy-api"}
    choices = await world.sb.autocomplete(g, g.member("erin"), "jit request", focused="scope", scope="")
    assert {c["value"] for c in choices} == {"incident-room"}


async def test_auto_approval_for_on_call(world):
    g = world.guild
    out = await request(world, "dave", duration="30m")
    assert "approved automatically" in out.text
    assert g.member("dave").has_role("deployers")
    out = await world.sb.slash(g, g.member("dave"), "jit mine")
    assert "deploy" in out.text and "until" in out.text


async def test_channel_scope_adds_and_removes_only_its_overwrite(world):
    g = world.guild
    incident = g.channel("incident")
    others = [(o.id, o.allow, o.deny) for o in incident.overwrites]
    await world.sb.slash(
        g, g.member("erin"), "jit request", scope="incident-room", duration="1h", reason="sev1"
    )
    await world.sb.click(g.member("bob"), card_in(world, 1), "Approve")
    ow = incident.overwrite_for(g.member("erin").id)
    assert ow is not None and ow.allow & (1 << 10) and ow.allow & (1 << 11)  # view_channel, send_messages
    await world.advance(dt.timedelta(hours=1))
    assert incident.overwrite_for(g.member("erin").id) is None
    assert [(o.id, o.allow, o.deny) for o in incident.overwrites] == others


async def test_bot_scope_upgrade(world, record_owner):
    g = world.guild
    bot = g.member("ci-bot")
    await record_owner("ci-bot", "alice")  # access for a bot is asked for by its owner or an admin
    out = await world.sb.slash(
        g,
        g.member("alice"),
        "jit request",
        scope="bot-webhooks",
        duration="1h",
        reason="rotate hooks",
        **{"for": bot},
    )
    assert "waiting for approval" in out.text
    assert "(bot)" in card_in(world, 1).text
    await world.sb.click(g.member("bob"), card_in(world, 1), "Approve")
    assert bot.has_role("webhook-manager")
    # A bot cannot read DMs: the reminder and the end go to the member who asked for it.
    dms_before = len(world.sb.request_log)
    await world.advance(dt.timedelta(minutes=50))
    await world.sb.wait_for_message(g.member("alice"), contains="Reminder: your access **bot-webhooks**")
    await world.advance(dt.timedelta(minutes=11))
    assert not bot.has_role("webhook-manager")
    ended = await world.sb.wait_for_message(g.member("alice"), contains="has ended")
    assert ended.text.startswith(f"For <@{bot.id}>:")
    calls = list(world.sb.request_log)[dms_before:]
    assert not [r for r in calls if r.status == 403 and "messages" in r.path], "a DM was sent to the bot"


async def test_revoke_by_holder_and_by_approver(world):
    g = world.guild
    await request(world, "dave", duration="30m")  # auto-approved → grant 1
    out = await world.sb.slash(g, g.member("erin"), "jit revoke", grant=1)
    assert "Only the holder of grant #1" in out.text
    out = await world.sb.slash(g, g.member("bob"), "jit revoke", grant=1, reason="done")
    assert "revoked and removed" in out.text
    assert not g.member("dave").has_role("deployers")
    await world.sb.wait_for_message(g.member("dave"), contains="was revoked by")
    out = await world.sb.slash(g, g.member("dave"), "jit revoke", grant=1)
    assert "already revoked" in out.text


async def test_extend_goes_through_approval_and_respects_the_maximum(world):
    g = world.guild
    await request(world, "alice", duration="6h")
    card = card_in(world, 1)
    await world.sb.click(g.member("bob"), card, "Approve")
    await world.sb.click(g.member("carol"), card, "Approve")
    world.clock.advance(dt.timedelta(seconds=31))
    out = await world.sb.slash(g, g.member("alice"), "jit extend", grant=1, duration="3h", reason="more")
    assert "over `deploy`'s maximum of 8h" in out.text and "add at most 2h" in out.text
    out = await world.sb.slash(g, g.member("alice"), "jit extend", grant=1, duration="2h", reason="more")
    assert "Extension request #2" in out.text
    card2 = card_in(world, 2)
    await world.sb.click(g.member("bob"), card2, "Approve")
    await world.sb.click(g.member("carol"), card2, "Approve")
    await world.sb.wait_for_message(g.member("alice"), contains="was extended")
    await world.advance(dt.timedelta(hours=7))
    assert g.member("alice").has_role("deployers")
    await world.advance(dt.timedelta(hours=1))
    assert not g.member("alice").has_role("deployers")


async def test_cancel_and_abuse_guards(world, record_owner):
    g = world.guild
    await record_owner("ci-bot", "alice")
    await request(world, "alice")
    out = await request(world, "alice", scope="incident-room")
    assert "asking too fast" in out.text and "<t:" in out.text
    out = await world.sb.slash(g, g.member("bob"), "jit cancel", request=1)
    assert "Only the member who asked" in out.text
    out = await world.sb.slash(g, g.member("alice"), "jit cancel", request=1)
    assert "Request #1 is withdrawn" in out.text
    assert "Withdrawn" in card_in(world, 1).text
    out = await world.sb.click(
        g.member("bob"), card_in(world, 1), custom_id="warden:vote:1:approve", forged=True
    )
    assert "already cancelled" in out.text
    for i in range(3):
        world.clock.advance(dt.timedelta(seconds=31))
        out = await request(
            world,
            "alice",
            scope=["deploy", "incident-room", "bot-webhooks"][i],
            **({"for": g.member("ci-bot")} if i == 2 else {}),
        )
        assert "waiting for approval" in out.text, out.text
    world.clock.advance(dt.timedelta(seconds=31))
    out = await request(world, "alice", scope="incident-room", **{"for": g.member("erin")})
    assert "already have 3 pending requests" in out.text


async def test_pending_request_expires_after_ttl_with_a_reminder_half_way(world):
    g = world.guild
    await request(world, "alice")
    await world.advance(dt.timedelta(hours=2))
    reminder = await world.sb.wait_for_message(g.channel("approvals"), contains="Reminder: request #1")
    assert "still needs 2 approvals" in reminder.text
    await world.advance(dt.timedelta(hours=2))
    assert "nobody decided in time" in card_in(world, 1).text
    await world.sb.wait_for_message(g.member("alice"), contains="expired")
    out = await world.sb.click(
        g.member("bob"), card_in(world, 1), custom_id="warden:vote:1:approve", forged=True
    )
    assert "already expired" in out.text


async def test_breakglass_is_loud_and_needs_a_review(world):
    g = world.guild
    dave = g.member("dave")
    out = await world.sb.slash(g, g.member("alice"), "jit breakglass", scope="deploy", reason="x")
    assert "does not allow break-glass" in out.text
    out = await world.sb.slash(g, dave, "jit breakglass", scope="breakglass-admin", reason="prod down")
    assert "Break-glass" in out.text and dave.has_role("emergency")
    review = await world.sb.wait_for_message(g.channel("approvals"), contains="Break-glass review")
    out = await world.sb.click(dave, review, "Acknowledge review")
    assert "Only" in out.text
    await world.sb.click(g.member("bob"), review, "Acknowledge review")
    review = await world.sb.wait_for_message(g.channel("approvals"), contains="Reviewed by")
    await world.settle()
    gov = " ".join(m.text for m in world.sb.messages(g.channel("governance")))
    assert "Break-glass" in gov and "prod down" in gov


async def test_concurrent_approvals_on_a_quorum_of_one_give_one_grant(world):
    import asyncio

    g = world.guild
    await world.sb.slash(
        g, g.member("erin"), "jit request", scope="incident-room", duration="1h", reason="sev1"
    )
    card = card_in(world, 1)
    a, b = await asyncio.gather(
        world.sb.click(g.member("bob"), card, "Approve"), world.sb.click(g.member("carol"), card, "Approve")
    )
    async with world.bot.session_factory() as s:
        grants = (await s.scalars(select(Grant))).all()
        applied = await s.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.outcome == "granted")
        )
    assert len(grants) == 1 and applied == 1
    texts = a.text + b.text
    assert "already approved" in texts or "already" in texts


async def test_database_down_fails_closed(world):
    g = world.guild
    await world.database_down()
    out = await request(world, "dave", duration="30m")
    assert "unavailable" in out.text and "nothing was changed" in out.text
    assert not g.member("dave").has_role("deployers")
    await world.database_up()
    assert await count(world, AccessRequest) == 0
    out = await request(world, "dave", duration="30m")
    assert "approved automatically" in out.text


async def test_duration_and_id_autocomplete_guide_the_member(world):
    g = world.guild
    alice = g.member("alice")
    choices = await world.sb.autocomplete(
        g, alice, "jit request", focused="duration", scope="deploy", duration=""
    )
    values = [c["value"] for c in choices]
    assert values[0] == "1h" and choices[0]["name"] == "1h (default)"
    assert "8h" in values and "12h" not in values  # nothing over the scope's maximum
    over = await world.sb.autocomplete(
        g, alice, "jit request", focused="duration", scope="deploy", duration="10h"
    )
    assert over[0]["name"] == "10h is over the maximum 8h"
    bad = await world.sb.autocomplete(
        g, alice, "jit request", focused="duration", scope="deploy", duration="9x"
    )
    assert "is not a duration" in bad[0]["name"]
    await request(world, "alice")
    pending = await world.sb.autocomplete(g, alice, "jit cancel", focused="request", request="")
    assert [c["value"] for c in pending] == [1]
    await request(world, "dave", duration="30m")  # auto-approved: grant #1
    grants = await world.sb.autocomplete(g, g.member("dave"), "jit revoke", focused="grant", grant="")
    assert grants[0]["value"] == 1 and grants[0]["name"].startswith("grant #1 deploy — ends in 30m")
