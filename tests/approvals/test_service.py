"""The approval rules, straight against the database (SQLite, and PostgreSQL when configured).

ApprovalService with Discord faked (tests/helpers.py) and the example policy, whose `deploy` needs
two approvals from sec-leads, ends at the first denial and forbids self-approval: who may vote,
how votes count, what ends a request, and break-glass review. Every refusal says why and writes
nothing (`RuleServices.refused`).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.db.models import AccessRequest, Grant, GrantStatus, LedgerEntry, RequestStatus, Vote
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound
from tests.helpers import OfflineAcme, RuleServices


async def asked(rules: RuleServices, who: str = "alice", scope: str = "deploy") -> int:
    out = await rules.requests.create(rules.member(who), scope, "2h", "release 4.2")
    return out.request.id


async def votes(rules: RuleServices, request_id: int) -> list[tuple[int, bool, str | None]]:
    async with rules.sessions() as s:
        rows = await s.scalars(select(Vote).where(Vote.request_id == request_id).order_by(Vote.id))
        return [(v.approver_id, v.approve, v.reason) for v in rows]


async def outcomes(rules: RuleServices) -> list[str]:
    async with rules.sessions() as s:
        return list(await s.scalars(select(LedgerEntry.outcome).order_by(LedgerEntry.id)))


async def test_only_the_scopes_approvers_may_vote(rules: RuleServices) -> None:
    rid = await asked(rules)
    for check in (
        rules.approvals.vote(rules.member("dave"), rid, True),
        rules.approvals.check_can_vote(rules.member("dave"), rid),  # what the Deny button asks first
    ):
        await rules.refused(
            check,
            NotAllowed,
            f"Only <@&{OfflineAcme.SEC_LEADS}> can decide on `deploy`; your click was not counted.",
        )
    assert await votes(rules, rid) == []


async def test_self_approval_never_counts_even_for_an_approver(rules: RuleServices) -> None:
    rid = await asked(rules, "sam")  # sam is a sec-lead too
    for check in (
        rules.approvals.vote(rules.member("sam"), rid, True),
        rules.approvals.check_can_vote(rules.member("sam"), rid),
    ):
        await rules.refused(
            check,
            NotAllowed,
            "You cannot decide on your own request: self-approval is off for `deploy`. Another approver must decide.",
        )
    assert await votes(rules, rid) == []


async def test_the_subject_of_a_request_cannot_decide_on_it(rules: RuleServices) -> None:
    out = await rules.requests.create(
        rules.member("alice"), "deploy", "1h", "for sam", subject=rules.member("sam")
    )
    await rules.refused(
        rules.approvals.vote(rules.member("sam"), out.request.id, True),
        NotAllowed,
        "You cannot decide on your own request",
    )


async def test_quorum_counts_distinct_approvers_then_grants(rules: RuleServices) -> None:
    rid = await asked(rules)
    bob, carol, alice = rules.member("bob"), rules.member("carol"), rules.member("alice")
    first = await rules.approvals.vote(bob, rid, True)
    assert (first.approvals, first.decided, first.grant) == (1, False, None)
    assert (await rules.one(AccessRequest, rid)).status == RequestStatus.PENDING
    assert rules.told.events[-1] == ("request_updated", rid)
    assert not rules.discord.held

    second = await rules.approvals.vote(carol, rid, True)
    assert (second.approvals, second.decided) == (2, True)
    assert second.grant is not None and second.grant.status == GrantStatus.ACTIVE
    req = await rules.one(AccessRequest, rid)
    assert (req.status, req.decided_by, req.decision_rule) == (
        RequestStatus.APPROVED,
        carol.id,
        "scope.deploy.approvals_required",
    )
    assert (alice.id, OfflineAcme.DEPLOYERS) in rules.discord.held
    assert await votes(rules, rid) == [(bob.id, True, None), (carol.id, True, None)]
    assert await outcomes(rules) == ["requested", "voted", "voted", "approved", "granted"]


async def test_a_denial_needs_a_reason_and_ends_the_request(rules: RuleServices) -> None:
    rid = await asked(rules)
    bob = rules.member("bob")
    await rules.refused(
        rules.approvals.vote(bob, rid, False, "  "),
        BadInput,
        "A denial needs a reason, so the requester knows what to do next.",
    )
    await rules.refused(
        rules.approvals.vote(bob, rid, False, "n" * 401),
        BadInput,
        "Your reason is 401 characters; the limit is 400.",
    )
    out = await rules.approvals.vote(bob, rid, False, "no change ticket")
    assert out.decided and out.grant is None
    req = await rules.one(AccessRequest, rid)
    assert (req.status, req.decided_by, req.decision_note) == (
        RequestStatus.DENIED,
        bob.id,
        "no change ticket",
    )
    assert rules.told.events[-1] == ("request_decided", rid)
    assert await outcomes(rules) == ["requested", "voted", "denied"]
    assert not rules.discord.held


async def test_a_second_vote_by_the_same_approver_is_refused(rules: RuleServices) -> None:
    rid = await asked(rules)
    bob = rules.member("bob")
    await rules.approvals.vote(bob, rid, True)
    await rules.refused(
        rules.approvals.vote(bob, rid, True),
        AlreadyDecided,
        f"You already approved request #{rid} at",
        "the tally is unchanged",
    )
    await rules.refused(
        rules.approvals.vote(bob, rid, False, "changed my mind"), AlreadyDecided, "You already approved"
    )
    assert await votes(rules, rid) == [(bob.id, True, None)]


async def test_no_vote_on_a_decided_request(rules: RuleServices) -> None:
    rid = await asked(rules)
    await rules.approvals.vote(rules.member("bob"), rid, False, "not today")
    await rules.refused(
        rules.approvals.vote(rules.member("carol"), rid, True),
        AlreadyDecided,
        f"Request #{rid} is already denied; nothing changed.",
    )
    cancelled = await asked(rules, "dave", "incident-room")
    await rules.requests.cancel(rules.member("dave"), cancelled)
    await rules.refused(
        rules.approvals.vote(rules.member("bob"), cancelled, True),
        AlreadyDecided,
        f"Request #{cancelled} is already cancelled",
    )


async def test_a_vote_on_an_unknown_request_is_refused(rules: RuleServices) -> None:
    await rules.refused(
        rules.approvals.vote(rules.member("bob"), 4242, True),
        NotFound,
        "There is no request #4242 in this server. Check the id with `/jit mine`.",
    )


async def test_one_approval_suffices_where_the_scope_says_so(rules: RuleServices) -> None:
    rid = await asked(rules, "erin", "incident-room")  # @everyone may ask; one approval
    out = await rules.approvals.vote(rules.member("bob"), rid, True)
    assert out.decided and out.grant is not None and out.grant.kind == "channel"
    assert (rules.member("erin").id, OfflineAcme.INCIDENT) in rules.discord.held


async def test_break_glass_is_reviewed_once_by_another_approver(rules: RuleServices) -> None:
    olga = rules.member("olga")  # on-call and a sec-lead
    grant = (await rules.requests.breakglass(olga, "breakglass-admin", "prod down")).grant
    assert grant is not None
    await rules.refused(
        rules.approvals.acknowledge_review(olga, grant.id),
        NotAllowed,
        "You cannot review your own break-glass access; another approver must.",
    )
    await rules.refused(
        rules.approvals.acknowledge_review(rules.member("dave"), grant.id),
        NotAllowed,
        f"Only <@&{OfflineAcme.SEC_LEADS}> can review break-glass on `breakglass-admin`.",
    )
    reviewed = await rules.approvals.acknowledge_review(rules.member("bob"), grant.id)
    assert reviewed.review_acknowledged_by == rules.member("bob").id
    assert rules.told.events[-1] == ("refresh_review", grant.id)
    await rules.refused(
        rules.approvals.acknowledge_review(rules.member("carol"), grant.id),
        AlreadyDecided,
        f"Grant #{grant.id} was already reviewed by <@{rules.member('bob').id}>",
    )
    row = await rules.one(Grant, grant.id)
    assert (row.review_acknowledged_by, row.review_acknowledged_at) == (
        rules.member("bob").id,
        rules.clock.now(),
    )


async def test_only_break_glass_grants_are_reviewed(rules: RuleServices) -> None:
    grant = (await rules.requests.create(rules.member("dave"), "deploy", "1h", "auto")).grant
    assert grant is not None and not grant.breakglass
    await rules.refused(
        rules.approvals.acknowledge_review(rules.member("bob"), grant.id),
        NotFound,
        f"There is no break-glass grant #{grant.id} to review in this server.",
    )


async def test_concurrent_approvals_decide_once_and_grant_once(rules: RuleServices) -> None:
    rid = await asked(rules)
    results = await asyncio.gather(
        rules.approvals.vote(rules.member("bob"), rid, True),
        rules.approvals.vote(rules.member("carol"), rid, True),
        rules.approvals.vote(rules.member("olga"), rid, True),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    late = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 2 and len(late) == 1, results
    assert isinstance(late[0], AlreadyDecided) and f"Request #{rid} is already approved" in late[0].message
    assert sorted(v.decided for v in done) == [False, True]
    assert (await rules.counts())["grants"] == 1
    assert len(await votes(rules, rid)) == 2
    assert (await outcomes(rules)).count("approved") == 1
