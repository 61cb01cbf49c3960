"""The request rules, straight against the database (SQLite, and PostgreSQL when configured).

RequestService and PendingSweeps with Discord faked (tests/helpers.py: offline discord.py members,
a recording notifier, roles held in memory) and the documented example policy: who may ask, for
whom, for what and for how long; the abuse guards; extensions, cancellation, break-glass and the
pending deadline. Every refusal says what is wrong and writes nothing (`RuleServices.refused`).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import update

from bot.db.models import (
    AccessRequest,
    Grant,
    GrantStatus,
    Identity,
    IdentityKind,
    RequestKind,
    RequestStatus,
)
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound, TooSoon
from tests.helpers import OfflineAcme, RuleServices

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
COOLDOWN = dt.timedelta(seconds=31)  # the example policy's request_cooldown is 30s


async def granted(rules: RuleServices, who: str = "alice", duration: str = "2h") -> Grant:
    """A deploy grant, asked for by `who` and approved by bob and carol: active in Discord."""
    out = await rules.requests.create(rules.member(who), "deploy", duration, "release 4.2")
    await rules.approvals.vote(rules.member("bob"), out.request.id, True)
    vote = await rules.approvals.vote(rules.member("carol"), out.request.id, True)
    assert vote.grant is not None and vote.grant.status == GrantStatus.ACTIVE
    return vote.grant


# ---------------------------------------------------------------- who may ask, and for whom


async def test_only_the_scopes_requesters_may_ask(rules: RuleServices) -> None:
    await rules.refused(
        rules.requests.create(rules.member("erin"), "deploy", "1h", "release"),
        NotAllowed,
        "You may not request `deploy`",
        f"only <@&{OfflineAcme.ENGINEERS}> can",
        "Ask a server admin",
    )


async def test_a_member_named_with_for_must_be_able_to_hold_the_scope(rules: RuleServices) -> None:
    erin = rules.member("erin")
    await rules.refused(
        rules.requests.create(rules.member("alice"), "deploy", "1h", "release", subject=erin),
        NotAllowed,
        f"{erin.mention} may not receive `deploy`",
        "Nothing was requested",
    )
    # ...and a member who could ask for it may receive it: the request is theirs, asked by alice.
    out = await rules.requests.create(
        rules.member("alice"), "deploy", "1h", "release", subject=rules.member("dave")
    )
    req = await rules.one(AccessRequest, out.request.id)
    assert (req.requester_id, req.subject_id, req.status) == (
        rules.member("alice").id,
        rules.member("dave").id,
        RequestStatus.PENDING,
    )


async def test_access_for_a_bot_is_asked_by_an_admin_or_its_recorded_owner(rules: RuleServices) -> None:
    bot = rules.member("ci-bot")
    await rules.refused(
        rules.requests.create(rules.member("alice"), "bot-webhooks", "1h", "hooks", subject=bot),
        NotAllowed,
        f"owner Warden has on record for {bot.mention}",
        "you are neither",
    )
    # A server admin (Manage Server) may.
    out = await rules.requests.create(rules.member("ada"), "bot-webhooks", "1h", "hooks", subject=bot)
    req = await rules.one(AccessRequest, out.request.id)
    assert req.subject_id == bot.id and req.subject_is_bot and req.status == RequestStatus.PENDING
    # So may the owner Warden has on record (after the admin's request is decided).
    await rules.requests.cancel(rules.member("ada"), req.id)
    async with rules.sessions() as s, s.begin():
        s.add(
            Identity(
                guild_id=OfflineAcme.GUILD,
                kind=IdentityKind.BOT,
                external_id=str(bot.id),
                name="ci-bot",
                owner_id=rules.member("alice").id,
                first_seen_at=rules.clock.now(),
                last_seen_at=rules.clock.now(),
            )
        )
    out = await rules.requests.create(rules.member("alice"), "bot-webhooks", "1h", "hooks", subject=bot)
    assert (await rules.one(AccessRequest, out.request.id)).requester_id == rules.member("alice").id


async def test_member_scopes_refuse_bots_and_bot_scopes_refuse_members(rules: RuleServices) -> None:
    alice, bot = rules.member("alice"), rules.member("ci-bot")
    await rules.refused(
        rules.requests.create(alice, "deploy", "1h", "release", subject=bot),
        BadInput,
        f"`deploy` is for members, not bots, and {bot.mention} is a bot",
    )
    await rules.refused(
        rules.requests.create(alice, "bot-webhooks", "1h", "hooks"),
        BadInput,
        "`bot-webhooks` is a bot scope upgrade",
        "Name the bot with `for:`",
    )


async def test_a_role_held_outside_warden_is_not_requested(rules: RuleServices) -> None:
    await rules.refused(
        rules.requests.create(rules.member("frank"), "deploy", "1h", "release"),
        AlreadyDecided,
        "already holds the role deployers outside Warden (standing access)",
        "Nothing was requested",
    )


# ---------------------------------------------------------------- what, for how long, and why


async def test_an_unknown_scope_lists_the_ones_the_member_may_request(rules: RuleServices) -> None:
    message = await rules.refused(
        rules.requests.create(rules.member("erin"), "deploy-prod", "1h", "release"),
        BadInput,
        "There is no scope named `deploy-prod`",
        "Scopes you can request: `incident-room`.",
    )
    assert "`deploy`" not in message  # erin may not request it, so she is not offered it


async def test_a_duration_over_the_scopes_maximum_is_refused(rules: RuleServices) -> None:
    await rules.refused(
        rules.requests.create(rules.member("alice"), "deploy", "9h", "release"),
        BadInput,
        "9h is longer than `deploy` allows (at most 8h). Ask for 8h or less.",
    )


async def test_zero_and_unparseable_durations_are_refused(rules: RuleServices) -> None:
    alice = rules.member("alice")
    await rules.refused(
        rules.requests.create(alice, "deploy", "0m", "release"),
        BadInput,
        "Duration: '0m' must be longer than zero",
    )
    await rules.refused(
        rules.requests.create(alice, "deploy", "soon", "release"),
        BadInput,
        "Duration: 'soon' is not a duration",
    )
    await rules.refused(
        rules.requests.create(alice, "deploy", "90", "release"), BadInput, "'90' has no unit: write 90m"
    )


async def test_no_duration_means_the_scopes_default(rules: RuleServices) -> None:
    out = await rules.requests.create(rules.member("alice"), "deploy", None, "release")
    assert (await rules.one(AccessRequest, out.request.id)).duration_seconds == 3600  # default_duration 1h


async def test_a_reason_is_required_and_bounded(rules: RuleServices) -> None:
    alice = rules.member("alice")
    await rules.refused(
        rules.requests.create(alice, "deploy", "1h", "   "), BadInput, "`deploy` needs a reason"
    )
    await rules.refused(
        rules.requests.create(alice, "deploy", "1h", "x" * 401),
        BadInput,
        "Your reason is 401 characters long; the limit is 400",
    )


# ---------------------------------------------------------------- abuse guards


async def test_at_most_three_pending_requests_per_member(rules: RuleServices) -> None:
    ada = rules.member("ada")
    await rules.requests.create(ada, "deploy", "1h", "one")
    rules.clock.advance(COOLDOWN)
    await rules.requests.create(ada, "incident-room", "1h", "two")
    rules.clock.advance(COOLDOWN)
    await rules.requests.create(ada, "bot-webhooks", "1h", "three", subject=rules.member("ci-bot"))
    rules.clock.advance(COOLDOWN)
    await rules.refused(
        rules.requests.create(ada, "deploy", "1h", "four"),
        TooSoon,
        "You already have 3 pending requests (the limit is 3)",
        "withdraw one with `/jit cancel`",
    )


async def test_requests_faster_than_the_cooldown_are_refused(rules: RuleServices) -> None:
    alice = rules.member("alice")
    await rules.requests.create(alice, "deploy", "1h", "release")
    rules.clock.advance(dt.timedelta(seconds=10))
    await rules.refused(
        rules.requests.create(alice, "incident-room", "1h", "incident"), TooSoon, "You are asking too fast"
    )
    rules.clock.advance(dt.timedelta(seconds=20))
    out = await rules.requests.create(alice, "incident-room", "1h", "incident")
    assert (await rules.one(AccessRequest, out.request.id)).status == RequestStatus.PENDING


async def test_a_second_request_for_the_same_scope_and_subject_is_refused(rules: RuleServices) -> None:
    alice = rules.member("alice")
    first = await rules.requests.create(alice, "deploy", "1h", "release")
    rules.clock.advance(COOLDOWN)
    await rules.refused(
        rules.requests.create(alice, "deploy", "2h", "again"),
        AlreadyDecided,
        f"Request #{first.request.id} for `deploy` for {alice.mention} is already waiting for approval",
    )


async def test_a_scope_already_held_through_warden_points_to_extend(rules: RuleServices) -> None:
    grant = await granted(rules)
    rules.clock.advance(COOLDOWN)
    await rules.refused(
        rules.requests.create(rules.member("alice"), "deploy", "1h", "more"),
        AlreadyDecided,
        f"already holds `deploy` (grant #{grant.id})",
        f"/jit extend grant:{grant.id}",
    )


# ---------------------------------------------------------------- auto-approval


async def test_auto_approval_grants_at_once_when_requester_and_subject_both_qualify(
    rules: RuleServices,
) -> None:
    dave = rules.member("dave")
    out = await rules.requests.create(dave, "deploy", "1h", "restart workers")
    assert out.auto_rule == "scope.deploy.auto_approve[0]"
    assert out.grant is not None and out.grant.status == GrantStatus.ACTIVE
    req = await rules.one(AccessRequest, out.request.id)
    assert (req.status, req.decision_rule) == (RequestStatus.APPROVED, "scope.deploy.auto_approve[0]")
    assert (dave.id, OfflineAcme.DEPLOYERS) in rules.discord.held
    assert "request_created" not in rules.told.what()  # no approval card: nobody needs to vote


async def test_no_auto_approval_over_its_duration_or_for_a_subject_who_does_not_qualify(
    rules: RuleServices,
) -> None:
    dave, alice = rules.member("dave"), rules.member("alice")
    longer = await rules.requests.create(dave, "deploy", "2h", "longer than the rule allows")
    rules.clock.advance(COOLDOWN)
    for_alice = await rules.requests.create(dave, "deploy", "30m", "for alice", subject=alice)
    for out in (longer, for_alice):
        assert out.auto_rule is None and out.grant is None
        assert (await rules.one(AccessRequest, out.request.id)).status == RequestStatus.PENDING
    assert rules.told.events == [
        ("request_created", longer.request.id),
        ("request_created", for_alice.request.id),
    ]
    assert not rules.discord.held


# ---------------------------------------------------------------- cancel


async def test_only_the_requester_may_withdraw_a_request(rules: RuleServices) -> None:
    out = await rules.requests.create(rules.member("alice"), "deploy", "1h", "release")
    await rules.refused(
        rules.requests.cancel(rules.member("bob"), out.request.id),
        NotAllowed,
        f"Only the member who asked can withdraw request #{out.request.id}.",
    )
    req = await rules.requests.cancel(rules.member("alice"), out.request.id)
    assert (await rules.one(AccessRequest, req.id)).status == RequestStatus.CANCELLED
    assert rules.told.events[-1] == ("request_decided", req.id)


async def test_a_decided_request_cannot_be_withdrawn(rules: RuleServices) -> None:
    out = await rules.requests.create(rules.member("alice"), "deploy", "1h", "release")
    await rules.approvals.vote(rules.member("bob"), out.request.id, False, "no ticket")
    await rules.refused(
        rules.requests.cancel(rules.member("alice"), out.request.id),
        AlreadyDecided,
        f"Request #{out.request.id} is already denied; there is nothing to withdraw.",
    )
    await rules.refused(
        rules.requests.cancel(rules.member("alice"), 999), NotFound, "There is no request #999 in this server"
    )


# ---------------------------------------------------------------- extensions


async def test_an_extension_may_not_take_the_grant_past_the_scopes_maximum(rules: RuleServices) -> None:
    grant = await granted(rules, duration="2h")
    alice = rules.member("alice")
    rules.clock.advance(COOLDOWN)
    await rules.refused(
        rules.requests.extend(alice, grant.id, "7h", "longer"),
        BadInput,
        f"That would make grant #{grant.id} last 9h in all, over `deploy`'s maximum of 8h.",
        "You can add at most 6h.",
    )
    out = await rules.requests.extend(alice, grant.id, "6h", "the migration")
    req = await rules.one(AccessRequest, out.request.id)
    assert (req.kind, req.extends_grant_id, req.status) == (
        RequestKind.EXTENSION,
        grant.id,
        RequestStatus.PENDING,
    )
    rules.clock.advance(COOLDOWN)
    await rules.refused(
        rules.requests.extend(alice, grant.id, "1h", "and more"),
        AlreadyDecided,
        f"Extension request #{req.id} for grant #{grant.id} is already pending.",
    )


async def test_the_maximum_is_checked_again_when_an_extension_is_approved(rules: RuleServices) -> None:
    grant = await granted(rules, duration="2h")
    rules.clock.advance(COOLDOWN)
    out = await rules.requests.extend(rules.member("alice"), grant.id, "5h", "the migration")
    # Meanwhile the grant grew (as a concurrent extension would have made it): 2h + 5h + 2h > 8h.
    assert grant.expires_at is not None
    async with rules.sessions() as s, s.begin():
        await s.execute(
            update(Grant).where(Grant.id == grant.id).values(expires_at=grant.expires_at + 2 * HOUR)
        )
    await rules.approvals.vote(rules.member("bob"), out.request.id, True)
    vote = await rules.approvals.vote(rules.member("carol"), out.request.id, True)
    assert vote.decided and vote.grant is None
    req = await rules.one(AccessRequest, out.request.id)
    assert req.status == RequestStatus.CANCELLED
    assert req.decision_note == "it would take the grant past the scope's maximum of 8h"
    assert (await rules.one(Grant, grant.id)).expires_at == grant.expires_at + 2 * HOUR  # not lengthened


async def test_only_the_holder_or_who_asked_may_extend(rules: RuleServices) -> None:
    grant = await granted(rules)
    await rules.refused(
        rules.requests.extend(rules.member("bob"), grant.id, "1h", "mine now"),
        NotAllowed,
        f"Only the holder of grant #{grant.id} (or who asked for it) can extend it.",
    )
    await rules.refused(
        rules.requests.extend(rules.member("alice"), 999, "1h", "x"), NotFound, "There is no grant #999"
    )


async def test_who_asked_for_a_grant_cannot_approve_its_extension(rules: RuleServices) -> None:
    # sam (engineer and approver) asked for alice; alice asks to extend; sam may not decide on it.
    sam, alice = rules.member("sam"), rules.member("alice")
    out = await rules.requests.create(sam, "deploy", "2h", "for alice's release", subject=alice)
    await rules.approvals.vote(rules.member("bob"), out.request.id, True)
    grant = (await rules.approvals.vote(rules.member("carol"), out.request.id, True)).grant
    assert grant is not None and grant.subject_id == alice.id
    ext = await rules.requests.extend(alice, grant.id, "1h", "not done")
    await rules.refused(
        rules.approvals.vote(sam, ext.request.id, True),
        NotAllowed,
        "You cannot decide on your own request: self-approval is off for `deploy`",
    )
    await rules.approvals.vote(rules.member("bob"), ext.request.id, True)
    vote = await rules.approvals.vote(rules.member("carol"), ext.request.id, True)
    assert vote.grant is not None and grant.expires_at is not None
    assert (await rules.one(Grant, grant.id)).expires_at == grant.expires_at + HOUR
    assert rules.told.events[-1] == ("grant_extended", grant.id)


# ---------------------------------------------------------------- break-glass


async def test_break_glass_needs_a_breakglass_scope_a_requester_and_a_reason(rules: RuleServices) -> None:
    await rules.refused(
        rules.requests.breakglass(rules.member("dave"), "deploy", "prod down"),
        NotAllowed,
        "`deploy` does not allow break-glass. Use `/jit request`",
    )
    await rules.refused(
        rules.requests.breakglass(rules.member("alice"), "breakglass-admin", "prod down"),
        NotAllowed,
        f"You may not request `breakglass-admin`: only <@&{OfflineAcme.ON_CALL}> can.",
    )
    await rules.refused(
        rules.requests.breakglass(rules.member("dave"), "breakglass-admin", " "),
        BadInput,
        "`breakglass-admin` needs a reason",
    )


async def test_break_glass_grants_at_once_and_cannot_be_extended(rules: RuleServices) -> None:
    dave = rules.member("dave")
    out = await rules.requests.breakglass(dave, "breakglass-admin", "prod down")
    assert out.grant is not None and out.grant.breakglass and out.grant.status == GrantStatus.ACTIVE
    assert out.grant.duration_seconds == 30 * 60  # the scope's default
    req = await rules.one(AccessRequest, out.request.id)
    assert (req.kind, req.status, req.approvals_required) == (
        RequestKind.BREAKGLASS,
        RequestStatus.APPROVED,
        0,
    )
    assert (dave.id, OfflineAcme.EMERGENCY) in rules.discord.held
    await rules.refused(
        rules.requests.extend(dave, out.grant.id, "10m", "still down"),
        NotAllowed,
        "Break-glass grants cannot be extended",
    )


# ---------------------------------------------------------------- the pending deadline


async def test_an_undecided_request_expires_at_its_deadline_exactly_once(rules: RuleServices) -> None:
    out = await rules.requests.create(rules.member("alice"), "deploy", "1h", "release")
    rules.clock.advance(4 * HOUR - MINUTE)
    assert await rules.pending.expire_pending() == []
    rules.clock.advance(MINUTE)  # pending_ttl is 4h
    # A click after the deadline (before the sweep) is refused with the reason.
    await rules.refused(
        rules.approvals.vote(rules.member("bob"), out.request.id, True),
        AlreadyDecided,
        f"Request #{out.request.id} has expired: nobody decided in time.",
    )
    assert [r.id for r in await rules.pending.expire_pending()] == [out.request.id]
    assert await rules.pending.expire_pending() == []
    req = await rules.one(AccessRequest, out.request.id)
    assert (req.status, req.decision_rule) == (RequestStatus.EXPIRED, "guild.pending_ttl")
    assert rules.told.events.count(("request_expired", req.id)) == 1


async def test_approvers_are_reminded_once_half_way_to_the_deadline(rules: RuleServices) -> None:
    out = await rules.requests.create(rules.member("alice"), "deploy", "1h", "release")
    rules.clock.advance(2 * HOUR - MINUTE)
    assert await rules.pending.remind_approvers() == []
    rules.clock.advance(MINUTE)
    assert [r.id for r in await rules.pending.remind_approvers()] == [out.request.id]
    rules.clock.advance(MINUTE)
    assert await rules.pending.remind_approvers() == []
    assert (
        await rules.one(AccessRequest, out.request.id)
    ).approvers_reminded_at == rules.clock.now() - MINUTE
    assert rules.told.events.count(("remind_approvers", out.request.id)) == 1


# ---------------------------------------------------------------- races: the database has the last word


async def test_two_requests_for_one_subject_at_the_same_moment_make_one_request(rules: RuleServices) -> None:
    dave = rules.member("dave")
    results = await asyncio.gather(
        rules.requests.create(rules.member("alice"), "deploy", "2h", "for dave", subject=dave),
        rules.requests.create(rules.member("sam"), "deploy", "2h", "for dave too", subject=dave),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], AlreadyDecided) and "already waiting for approval" in refused[0].message
    counts = await rules.counts()
    assert counts["requests"] == 1
    assert rules.told.what() == ["request_created"]


async def test_my_requests_lists_what_is_pending_and_what_is_held(rules: RuleServices) -> None:
    grant = await granted(rules)
    rules.clock.advance(COOLDOWN)
    pending = await rules.requests.create(rules.member("alice"), "incident-room", "1h", "incident")
    mine = await rules.requests.mine(rules.member("alice"))
    assert [r.id for r in mine.pending] == [pending.request.id]
    assert [g.id for g in mine.active] == [grant.id]
    theirs = await rules.requests.mine(rules.member("bob"))
    assert (theirs.pending, theirs.active) == ([], [])
