"""Approvals: who may vote, how votes reach a quorum or end a request, and break-glass review.

The request row is locked while a vote is counted, so concurrent clicks produce exactly
one outcome. Discord is touched only after the transaction commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import discord
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AccessRequest, Grant, RequestKind, RequestStatus, Vote
from bot.db.session import fresh
from bot.decisions import outcomes
from bot.decisions.service import Outcome
from bot.durations import discord_ts as ts
from bot.escape import typed
from bot.grantability import check_grantable, describe_refs, may_approve
from bot.policy import Scope
from bot.requests import scopes
from bot.requests.approve import Approval, approve
from bot.requests.rules import MAX_REASON_LENGTH, locked_request
from bot.services.base import Core, Service, transaction
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound


@dataclass(frozen=True)
class VoteOutcome:
    request: AccessRequest
    scope: Scope
    approvals: int
    decided: bool
    grant: Grant | None = None


class ApprovalService(Service):
    def __init__(self, core: Core, *, grants: GrantApplier, notifier: ApprovalNotifier) -> None:
        super().__init__(core)
        self._grants = grants
        self._notifier = notifier

    # ---- who may vote -------------------------------------------------------------------------

    async def check_can_vote(self, approver: discord.Member, request_id: int) -> None:
        """The vote's eligibility rules without voting (before asking a denier for a reason)."""
        async with transaction(self._sessions) as session:
            req = await session.get(AccessRequest, request_id)
            if req is None or req.guild_id != approver.guild.id:
                raise NotFound(
                    f"There is no request #{request_id} in this server. Check the id with `/jit mine`."
                )
            scope = scopes.scope_for(self._guilds, approver.guild.id, req.scope_id)
            self._eligible(approver, req, scope, await _involved(session, req, lock=False))

    def _still_pending(self, req: AccessRequest) -> None:
        if req.status != RequestStatus.PENDING:
            raise AlreadyDecided(f"Request #{req.id} is already {req.status}; nothing changed.")
        if req.pending_until <= self._clock.now():
            raise AlreadyDecided(
                f"Request #{req.id} has expired: nobody decided in time. The requester can ask again."
            )

    def _eligible(
        self, approver: discord.Member, req: AccessRequest, scope: Scope, involved: set[int]
    ) -> None:
        self._still_pending(req)
        if not may_approve(scope, approver):
            raise NotAllowed(
                f"Only {describe_refs(approver.guild, scope.approvers)} can decide on `{scope.id}`; "
                "your click was not counted."
            )
        if approver.id in involved and not scope.self_approval:
            raise NotAllowed(
                "You cannot decide on your own request: self-approval is off for "
                f"`{scope.id}`. Another approver must decide."
            )
        earlier = next((v for v in req.votes if v.approver_id == approver.id), None)
        if earlier is not None:
            verb = "approved" if earlier.approve else "denied"
            raise AlreadyDecided(
                f"You already {verb} request #{req.id} at {ts(earlier.created_at)}; the tally is unchanged."
            )

    # ---- voting: check the note, count the vote, decide, then tell people ------------------------

    async def vote(
        self, approver: discord.Member, request_id: int, approve: bool, reason: str | None = None
    ) -> VoteOutcome:
        note = _vote_note(approve, reason)
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            req = await locked_request(session, approver.guild.id, request_id)
            scope = scopes.scope_for(self._guilds, approver.guild.id, req.scope_id)
            self._eligible(approver, req, scope, await _involved(session, req))
            approvals = await self._count(session, req, scope, approver, approve, note, now)
            decided, grant = await self._decide(session, req, scope, approver, approve, note, now)
        if decided and grant is not None:
            extension = req.kind == RequestKind.EXTENSION
            self._kill.reached("approval.extend.after_commit" if extension else "approval.vote.after_commit")
        await self._tell(req, scope, decided, grant)
        if decided and grant is not None and req.kind != RequestKind.EXTENSION:
            grant = await self._grants.apply_new(grant, req.reason)  # its notice updates the card
        return VoteOutcome(req, scope, approvals, decided, grant)

    async def _count(
        self,
        session: AsyncSession,
        req: AccessRequest,
        scope: Scope,
        approver: discord.Member,
        approve: bool,
        note: str,
        now: dt.datetime,
    ) -> int:
        """Add the vote (once per approver, enforced by the database) and record it."""
        req.votes.append(
            Vote(
                request_id=req.id,
                approver_id=approver.id,
                approve=approve,
                reason=note or None,
                created_at=now,
            )
        )
        try:
            await session.flush()
        except IntegrityError:
            raise AlreadyDecided("Your vote on this request was already counted.") from None
        approvals = sum(1 for v in req.votes if v.approve)
        await self._decisions.record(
            session,
            outcomes.voted(
                req,
                scope,
                approver_id=approver.id,
                approve=approve,
                note=note or None,
                at=now,
                reason=f"{approver} {'approved' if approve else 'denied'} request #{req.id} "
                f"({approvals} of {req.approvals_required} approvals).",
            ),
        )
        return approvals

    async def _decide(
        self,
        session: AsyncSession,
        req: AccessRequest,
        scope: Scope,
        approver: discord.Member,
        approve_vote: bool,
        note: str,
        now: dt.datetime,
    ) -> tuple[bool, Grant | None]:
        """Did this vote end the request? A denial may end it; the last approval grants it."""
        approvals = sum(1 for v in req.votes if v.approve)
        denials = sum(1 for v in req.votes if not v.approve)
        if not approve_vote and (scope.deny_ends_request or denials >= req.approvals_required):
            req.status = RequestStatus.DENIED
            req.decided_at = now
            req.decided_by = approver.id
            req.decision_note = note
            req.decision_rule = f"scope.{scope.id}.deny_ends_request"
            await self._decisions.record(
                session,
                outcomes.denied(
                    req,
                    scope,
                    approver_id=approver.id,
                    note=note,
                    reason=f"{approver} denied request #{req.id}: {note}",
                ),
            )
            return True, None
        if approvals < req.approvals_required:
            return False, None
        quorum = Approval(
            Outcome.APPROVED,
            f"scope.{scope.id}.approvals_required",
            f"Request #{req.id} reached its quorum of {req.approvals_required} approval"
            f"{'s' if req.approvals_required != 1 else ''}.",
            approver.id,
        )
        plan = check_grantable(approver.guild, scope)
        grant = await approve(session, self._decisions, req, scope, plan, now, quorum)
        return True, grant

    async def _tell(self, req: AccessRequest, scope: Scope, decided: bool, grant: Grant | None) -> None:
        if not decided:
            await self._notifier.request_updated(req)
        elif grant is None or req.kind == RequestKind.EXTENSION:
            # A new grant's own notice updates the card once it is applied (see vote()).
            await self._notifier.request_decided(req, scope)
            if grant is not None:
                await self._notifier.grant_extended(grant, req)

    # ---- break-glass review -------------------------------------------------------------------

    async def acknowledge_review(self, approver: discord.Member, grant_id: int) -> Grant:
        guild = approver.guild
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            grant = await fresh(session, Grant, grant_id, lock=True)
            if grant is None or grant.guild_id != guild.id or not grant.breakglass:
                raise NotFound(f"There is no break-glass grant #{grant_id} to review in this server.")
            scope = scopes.scope_for(self._guilds, guild.id, grant.scope_id)
            if not may_approve(scope, approver):
                raise NotAllowed(
                    f"Only {describe_refs(guild, scope.approvers)} can review break-glass on `{scope.id}`."
                )
            if approver.id == grant.subject_id:
                raise NotAllowed("You cannot review your own break-glass access; another approver must.")
            if grant.review_acknowledged_at is not None:
                raise AlreadyDecided(
                    f"Grant #{grant.id} was already reviewed by <@{grant.review_acknowledged_by}> "
                    f"at {ts(grant.review_acknowledged_at)}."
                )
            grant.review_acknowledged_by = approver.id
            grant.review_acknowledged_at = now
            await self._decisions.record(
                session,
                outcomes.reviewed(
                    grant,
                    scope,
                    reviewer_id=approver.id,
                    at=now,
                    reason=f"{approver} reviewed break-glass grant #{grant.id}.",
                ),
            )
        await self._notifier.refresh_review(grant.id)
        return grant


def _vote_note(approve: bool, reason: str | None) -> str:
    note = typed(reason)
    if not approve and not note:
        raise BadInput("A denial needs a reason, so the requester knows what to do next.")
    if len(note) > MAX_REASON_LENGTH:
        raise BadInput(
            f"Your reason is {len(note)} characters; the limit is {MAX_REASON_LENGTH}. Shorten it."
        )
    return note


class GrantApplier(Protocol):
    async def apply_new(self, grant: Grant, reason: str | None) -> Grant: ...


class ApprovalNotifier(Protocol):
    async def request_decided(self, req: AccessRequest, scope: Scope) -> None: ...
    async def request_updated(self, req: AccessRequest) -> None: ...
    async def grant_extended(self, grant: Grant, req: AccessRequest) -> None: ...
    async def refresh_review(self, grant_id: int) -> None: ...


async def _involved(session: AsyncSession, req: AccessRequest, *, lock: bool = True) -> set[int]:
    """Who may not decide on this request: its requester and subject, and for an extension the
    requester of the grant it extends. Locks that grant now, so every path takes its locks in one
    order (request → grant → ledger head) and a vote cannot deadlock with a revoke or an expiry."""
    involved = {req.requester_id, req.subject_id}
    if req.kind == RequestKind.EXTENSION and req.extends_grant_id is not None:
        grant = await session.get(Grant, req.extends_grant_id, with_for_update=lock)
        if grant is not None and grant.request_id is not None:
            original = await session.get(AccessRequest, grant.request_id)
            if original is not None:
                involved.add(original.requester_id)
    return involved
