"""The person's answer comes first; cards and DMs follow it (bot/discord_io/follow_ups.py).

An answer waits for what it promises — the decision committed, a grant it announces applied — and
not for telling everyone else. The sandbox's actions still return only once the bot's follow-up
work for that interaction is done, so what a test reads next (the card, the DM) is there.
"""

from __future__ import annotations

import datetime as dt
import logging

from bot.requests.sweeps import CARD_GRACE
from tests.helpers import card_in, request

MESSAGES = "/channels/{channel_id}/messages"


def log_index(world, method: str, path: str, after: int = -1) -> int:
    """Where the first request of ``method`` to ``path`` (after position ``after``) is in the
    sandbox's request log, in the order the bot sent them."""
    for i, r in enumerate(world.sb.request_log):
        if i > after and r.method == method and r.path == path:
            return i
    raise AssertionError(f"the bot sent no {method} {path}")


def answer_index(world, out) -> int:
    """The follow-up message that answered a deferred interaction."""
    app, token = world.sb.application_id, out.record.token
    return log_index(world, "POST", f"/webhooks/{app}/{token}")


async def test_a_request_is_answered_before_its_card_is_posted(world):
    approvals = world.guild.channel("approvals")
    out = await request(world, "alice")
    assert "waiting for approval" in out.text
    card = card_in(world, 1)  # there as soon as the slash command returns: the harness waited for it
    assert answer_index(world, out) < log_index(world, "POST", f"/channels/{approvals.id}/messages")
    assert card.components, "the card carries its buttons"


async def test_an_approval_is_answered_once_applied_and_before_the_card_and_dm(world):
    g = world.guild
    approvals, alice = g.channel("approvals"), g.member("alice")
    await request(world, "alice")
    card = card_in(world, 1)
    await world.sb.click(g.member("bob"), card, "Approve")
    before = len(world.sb.request_log) - 1
    out = await world.sb.click(g.member("carol"), card, "Approve")
    assert "completed the quorum" in out.text
    # The receipt says the grant is applied: the role was added before it ...
    role = g.role("deployers")
    added = log_index(world, "PUT", f"/guilds/{g.id}/members/{alice.id}/roles/{role.id}")
    answered = answer_index(world, out)
    assert added < answered
    # ... and the card and the holder's DM follow it — both done once the click returns.
    assert answered < log_index(world, "PATCH", f"/channels/{approvals.id}/messages/{card.id}", before)
    dm = world.sb.dm_channel(alice)
    assert answered < log_index(world, "POST", f"/channels/{dm.id}/messages", before)
    assert "granted" in card_in(world, 1).text.lower()
    assert any("deploy" in m.text for m in world.sb.messages(dm))


async def test_a_slow_card_post_does_not_delay_the_answer(world):
    approvals = world.guild.channel("approvals")
    world.sb.faults.delay("POST", f"/channels/{approvals.id}/messages", seconds=1.5, times=1)
    out = await request(world, "alice", timeout=10)
    rec = out.record
    assert rec.answered_loop is not None
    assert rec.answered_loop - rec.created_loop < 1.5, "the answer waited for the card"
    card_in(world, 1)


async def test_a_card_that_could_not_be_posted_is_logged_and_posted_by_the_sweep(world, caplog):
    g = world.guild
    approvals = g.channel("approvals")
    world.sb.faults.fail(
        "POST",
        f"/channels/{approvals.id}/messages",
        status=403,
        code=50013,
        message="Missing Access",
        times=1,
    )
    with caplog.at_level(logging.WARNING):
        out = await request(world, "alice")
    assert "waiting for approval" in out.text  # the request is committed: the answer says so
    assert not [m for m in world.sb.messages(approvals) if "#1" in m.text]
    assert any("could not post the approval card" in r.getMessage() for r in caplog.records)
    world.clock.advance(CARD_GRACE + dt.timedelta(seconds=1))
    report = await world.run_due()
    assert report.cards_posted == 1
    card = card_in(world, 1)
    await world.sb.click(g.member("bob"), card, "Approve")
    out = await world.sb.click(g.member("carol"), card_in(world, 1), "Approve")
    assert "completed the quorum" in out.text
    assert g.member("alice").has_role("deployers")


async def test_closing_the_bot_finishes_the_follow_up_work(world):
    approvals = world.guild.channel("approvals")
    world.sb.faults.delay("POST", f"/channels/{approvals.id}/messages", seconds=0.5, times=1)
    out = await request(world, "alice", wait=False)
    await out.record.settled.wait()  # answered; the card is still on its way
    assert not [m for m in world.sb.messages(approvals) if "#1" in m.text]
    await world.stop_bot()
    card_in(world, 1)


async def test_a_follow_up_that_fails_is_logged_and_the_request_stays_decidable(world, caplog):
    g = world.guild
    approvals = g.channel("approvals")
    world.sb.faults.delay("POST", f"/channels/{approvals.id}/messages", seconds=0.3, times=1)
    out = await request(world, "alice", wait=False)
    await out.record.settled.wait()
    assert "waiting for approval" in out.text
    # The card is on its way; the database goes away before Warden can note where it was posted.
    await world.database_down()
    with caplog.at_level(logging.WARNING):
        await world.bot.follow_ups.settled(out.record.id)
    failed = [r for r in caplog.records if "follow-up request_created failed" in r.getMessage()]
    assert failed and failed[0].interaction_id == out.record.id
    await world.database_up()
    # The card Warden could not note is re-posted by the lost-card sweep; either card decides.
    world.clock.advance(CARD_GRACE + dt.timedelta(seconds=1))
    assert (await world.run_due()).cards_posted == 1
    await world.sb.click(g.member("bob"), card_in(world, 1), "Approve")
    out = await world.sb.click(g.member("carol"), card_in(world, 1), "Approve")
    assert "completed the quorum" in out.text


async def test_the_card_ends_showing_the_latest_state_when_refreshes_overlap(world):
    g = world.guild
    await request(world, "erin", scope="incident-room", reason="sev2")
    await world.sb.click(g.member("bob"), card_in(world, 1), "Approve")  # discord.py learns the route's limit
    await request(world, "alice")
    card = card_in(world, 2)
    # Bob's card refresh is slow; Carol completes the quorum while it is still on its way.
    world.sb.faults.delay("PATCH", f"/channels/{card.channel_id}/messages/{card.id}", seconds=0.5, times=1)
    bob = await world.sb.click(g.member("bob"), card, "Approve", wait=False)
    await bob.record.settled.wait()
    assert "1 of 2" in bob.text
    carol = await world.sb.click(g.member("carol"), card, "Approve", timeout=10)
    assert "completed the quorum" in carol.text
    await world.bot.follow_ups.settled(bob.record.id)
    assert "granted" in card_in(world, 2).text.lower(), card_in(world, 2).text
