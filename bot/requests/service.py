"""Requests: every rule about who may ask, for what and for how long.

Each public method is one user action. It validates first (raising a WardenError with
nothing written), writes the request and its ledger decision in one transaction, and
only then touches Discord (cards, DMs, the grant itself) through the notifier and the
grant service. Votes, quorum and break-glass review live in bot/approvals/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import discord
from sqlalchemy import bindparam, select

from bot.db.models import AccessRequest, Grant, GrantStatus, RequestKind, RequestStatus
from bot.decisions import outcomes
from bot.decisions.service import Outcome
from bot.durations import format_duration
from bot.grantability import check_grantable, describe_refs, is_member_of, may_request
from bot.policy import Scope
from bot.requests import rules, scopes
from bot.requests.approve import Approval, approve
from bot.services.base import Core, Service, transaction
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound

#: Grants /jit mine lists: approved and not yet over (being applied or removed included).
LIVE_GRANT_STATUSES = (GrantStatus.ACTIVE, GrantStatus.APPROVED, GrantStatus.APPLYING, GrantStatus.REMOVING)

# /jit mine's two reads, built once: building a statement costs as much as running it here
# (SQLAlchemy's operator and coercion machinery), and /jit mine is the most frequent command.
_PENDING_OF_MEMBER = (
    select(AccessRequest)
    .where(
        AccessRequest.guild_id == bindparam("guild_id"),
        AccessRequest.requester_id == bindparam("member_id"),
        AccessRequest.status == RequestStatus.PENDING,
    )
    .order_by(AccessRequest.id)
)
_LIVE_GRANTS_OF_MEMBER = (
    select(Grant)
    .where(
        Grant.guild_id == bindparam("guild_id"),
        Grant.subject_id == bindparam("member_id"),
        Grant.status.in_(LIVE_GRANT_STATUSES),
    )
    .order_by(Grant.id)
)


@dataclass(frozen=True)
class RequestOutcome:
    request: AccessRequest
    scope: Scope
    grant: Grant | None = None  # set when the request was approved (auto or by quorum)
    auto_rule: str | None = None


@dataclass(frozen=True)
class Mine:
    pending: list[AccessRequest]
    active: list[Grant]


def _roles(member: discord.Member) -> list[int]:
    return [r.id for r in member.roles if not r.is_default()]


class RequestService(Service):
    def __init__(self, core: Core, *, grants: GrantApplier, notifier: RequestNotifier) -> None:
        super().__init__(core)
        self._grants = grants
        self._notifier = notifier

    # ---- lookups for commands and autocomplete ----------------------------------------------

    def requestable_scopes(self, member: discord.Member) -> list[Scope]:
        return scopes.requestable_scopes(self._guilds, member)

    def find_scope(self, guild_id: int, scope_id: str) -> Scope | None:
        return self._guilds.scope(guild_id, scope_id)

    # ---- actions ----------------------------------------------------------------------------

    async def create(
        self,
        member: discord.Member,
        scope_id: str,
        duration: str | None,
        reason: str | None,
        subject: discord.Member | None = None,
    ) -> RequestOutcome:
        guild = member.guild
        gp = scopes.guild_policy(self._guilds, guild.id)
        scope = scopes.scope_for(self._guilds, guild.id, scope_id, member)
        if not may_request(scope, member):
            raise NotAllowed(
                f"You may not request `{scope.id}`: only {describe_refs(guild, scope.requesters)} can. "
                "Ask a server admin if you need it."
            )
        length = rules.length_of(scope, duration)
        why = rules.reason_for(scope, reason)
        subject = subject or member
        plan = check_grantable(guild, scope)
        rules.check_recipient(scope, member, subject, plan.target_id)
        # Auto-approval holds only when both the requester and the subject qualify for it.
        auto = next(
            (
                (i, rule)
                for i, rule in enumerate(scope.auto_approve)
                if is_member_of(member, rule.members_of)
                and is_member_of(subject, rule.members_of)
                and length <= rule.max_duration
            ),
            None,
        )
        now = self._clock.now()
        async with rules.one_at_a_time(), transaction(self._sessions) as session:
            await rules.serialise_requester(session, guild.id, member.id)
            if subject.bot:
                await rules.check_bot_sponsor(session, gp, member, subject)
            await rules.abuse_guard(session, gp, member, now)
            await rules.no_duplicate(session, guild.id, scope, subject)
            until = now + gp.pending_ttl
            req = await rules.open_request(
                session, RequestKind.NEW, scope, member, (subject.id, subject.bot), length, why, now, until,
                approvals_required=scope.approvals_required,
            )  # fmt: skip
            on_behalf = f" for {subject}" if subject.id != member.id else ""
            said = f"{member} asked for {scope.id} for {format_duration(length)}{on_behalf}."
            await self._decisions.record(
                session, outcomes.requested(req, scope, reason=said, requester_roles=_roles(member))
            )
            grant = None
            auto_rule = None
            if auto is not None:
                auto_rule = f"scope.{scope.id}.auto_approve[{auto[0]}]"
                why_auto = Approval(
                    Outcome.AUTO_APPROVED,
                    auto_rule,
                    f"{member} is a member of {auto[1].members_of} and asked for no more than "
                    f"{format_duration(auto[1].max_duration)}, so no votes are needed.",
                )
                grant = await approve(session, self._decisions, req, scope, plan, now, why_auto)
        self._kill.reached("request.create.after_commit")
        if grant is None:
            await self._notifier.request_created(req, scope)
        else:
            # Auto-approved: no card was posted; the grant notice tells the requester.
            grant = await self._grants.apply_new(grant, req.reason)
        return RequestOutcome(req, scope, grant, auto_rule)

    async def cancel(self, member: discord.Member, request_id: int) -> AccessRequest:
        guild = member.guild
        async with transaction(self._sessions) as session:
            req = await rules.locked_request(session, guild.id, request_id)
            if req.requester_id != member.id:
                raise NotAllowed(f"Only the member who asked can withdraw request #{req.id}.")
            if req.status != RequestStatus.PENDING:
                raise AlreadyDecided(
                    f"Request #{req.id} is already {req.status}; there is nothing to withdraw."
                )
            req.status = RequestStatus.CANCELLED
            req.decided_at = self._clock.now()
            req.decided_by = member.id
            await self._decisions.record(
                session, outcomes.cancelled(req, reason=f"{member} withdrew request #{req.id}.")
            )
        scope = scopes.scope_for(self._guilds, guild.id, req.scope_id)
        await self._notifier.request_decided(req, scope)
        return req

    async def extend(
        self, member: discord.Member, grant_id: int, duration: str, reason: str | None
    ) -> RequestOutcome:
        guild = member.guild
        gp = scopes.guild_policy(self._guilds, guild.id)
        now = self._clock.now()
        async with rules.one_at_a_time(), transaction(self._sessions) as session:
            # Locked: concurrent extensions of one grant are decided one after the other.
            grant = await session.get(Grant, grant_id, with_for_update=True)
            if grant is None or grant.guild_id != guild.id:
                raise NotFound(
                    f"There is no grant #{grant_id} in this server. Check the id with `/jit mine`."
                )
            scope = scopes.scope_for(self._guilds, guild.id, grant.scope_id)
            if grant.status != GrantStatus.ACTIVE or grant.expires_at is None:
                raise AlreadyDecided(
                    f"Grant #{grant.id} is {grant.status}; only an active grant can be extended."
                )
            original = await session.get(AccessRequest, grant.request_id) if grant.request_id else None
            holder_ids = {grant.subject_id} | ({original.requester_id} if original else set())
            if member.id not in holder_ids:
                raise NotAllowed(f"Only the holder of grant #{grant.id} (or who asked for it) can extend it.")
            if grant.breakglass:
                raise NotAllowed("Break-glass grants cannot be extended; request the scope the normal way.")
            length = rules.length_of(scope, duration)
            why = rules.reason_for(scope, reason)
            total = (grant.expires_at - (grant.applied_at or grant.created_at)) + length
            if total > scope.max_duration:
                room = scope.max_duration - (grant.expires_at - (grant.applied_at or grant.created_at))
                hint = (
                    f"You can add at most {format_duration(room)}."
                    if room.total_seconds() >= 60
                    else "It is already at the maximum; request it again after it ends."
                )
                raise BadInput(
                    f"That would make grant #{grant.id} last {format_duration(total)} in all, over `{scope.id}`'s "
                    f"maximum of {format_duration(scope.max_duration)}. {hint}"
                )
            pending = await session.scalar(
                select(AccessRequest.id).where(
                    AccessRequest.extends_grant_id == grant.id, AccessRequest.status == RequestStatus.PENDING
                )
            )
            if pending is not None:
                raise AlreadyDecided(
                    f"Extension request #{pending} for grant #{grant.id} is already pending."
                )
            await rules.abuse_guard(session, gp, member, now)
            until = min(now + gp.pending_ttl, grant.expires_at)
            subject = (grant.subject_id, grant.subject_is_bot)
            req = await rules.open_request(
                session, RequestKind.EXTENSION, scope, member, subject, length, why, now, until,
                approvals_required=scope.approvals_required, extends_grant_id=grant.id,
            )  # fmt: skip
            said = f"{member} asked to extend grant #{grant.id} by {format_duration(length)}."
            roles = _roles(member)
            await self._decisions.record(
                session, outcomes.requested(req, scope, reason=said, requester_roles=roles, extends=grant)
            )
        self._kill.reached("request.extend.after_commit")
        await self._notifier.request_created(req, scope)
        return RequestOutcome(req, scope)

    async def breakglass(self, member: discord.Member, scope_id: str, reason: str | None) -> RequestOutcome:
        guild = member.guild
        gp = scopes.guild_policy(self._guilds, guild.id)
        scope = scopes.scope_for(self._guilds, guild.id, scope_id, member)
        if not scope.breakglass:
            raise NotAllowed(
                f"`{scope.id}` does not allow break-glass. Use `/jit request` and wait for approval."
            )
        if not may_request(scope, member):
            raise NotAllowed(
                f"You may not request `{scope.id}`: only {describe_refs(guild, scope.requesters)} can."
            )
        why = rules.reason_for(scope, reason)
        if not why:
            raise BadInput("Break-glass always needs a reason; approvers will review it.")
        plan = check_grantable(guild, scope)
        rules.check_recipient(scope, member, member, plan.target_id)  # break-glass is for oneself
        now = self._clock.now()
        async with rules.one_at_a_time(), transaction(self._sessions) as session:
            await rules.no_duplicate(session, guild.id, scope, member)
            until = now + gp.pending_ttl
            req = await rules.open_request(
                session, RequestKind.BREAKGLASS, scope, member, (member.id, member.bot),
                scope.default_duration, why, now, until, approvals_required=0,
            )  # fmt: skip
            unreviewed = Approval(
                Outcome.BREAKGLASS,
                f"scope.{scope.id}.breakglass",
                f"{member} used break-glass on {scope.id} without approval: {why}. Approvers must review it.",
                member.id,
            )
            grant = await approve(session, self._decisions, req, scope, plan, now, unreviewed)
        assert grant is not None
        grant = await self._grants.apply_new(grant, req.reason)
        return RequestOutcome(req, scope, grant)

    async def mine(self, member: discord.Member) -> Mine:
        """The member's pending requests and live grants, read at one moment (one transaction:
        half the round trips of two, and never a request counted both pending and granted)."""
        ids = {"guild_id": member.guild.id, "member_id": member.id}
        async with transaction(self._sessions) as session:
            pending = list((await session.scalars(_PENDING_OF_MEMBER, ids)).all())
            active = list((await session.scalars(_LIVE_GRANTS_OF_MEMBER, ids)).all())
            return Mine(pending, active)


# Structural types for the collaborators, so this room does not import the Discord-facing ones.
class GrantApplier(Protocol):
    async def apply_new(self, grant: Grant, reason: str | None) -> Grant: ...


class RequestNotifier(Protocol):
    async def request_created(self, req: AccessRequest, scope: Scope) -> None: ...
    async def request_decided(self, req: AccessRequest, scope: Scope) -> None: ...
