"""Requests and votes: every rule about who may ask, for what, for how long, and who decides.

Each public method is one user action. It validates first (raising a WardenError with
nothing written), writes the request/vote and its ledger decision in one transaction,
and only then touches Discord (cards, DMs, the grant itself) through the notifier and
the grant service. A request row is locked while a vote is counted, so concurrent
clicks produce exactly one outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Protocol

import discord
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AccessRequest, Grant, GrantStatus, RequestKind, RequestStatus, Vote
from bot.decisions.service import Decision, DecisionService, Outcome
from bot.durations import DurationError, format_duration, parse_duration
from bot.durations import discord_ts as ts
from bot.grantability import (
    describe_refs,
    is_member_of,
    may_approve,
    may_request,
    resolve_channel,
    resolve_role,
)
from bot.policy import GuildDirectory, GuildPolicy, Scope, permission_names, permissions_from_names
from bot.services.base import rowcount, transaction
from bot.services.errors import (
    AlreadyDecided,
    BadInput,
    CannotGrant,
    NotAllowed,
    NotFound,
    TooSoon,
)

log = logging.getLogger(__name__)

# The user's reason goes into Discord's audit-log reason (512 characters) together with
# the grant and request ids; this leaves room for them so the reason is never cut.
MAX_REASON_LENGTH = 400


def votes_proof(req: AccessRequest) -> list[dict[str, object]]:
    return [{"approver": v.approver_id, "approve": v.approve, "at": v.created_at} for v in req.votes]


@dataclass(frozen=True)
class RequestOutcome:
    request: AccessRequest
    scope: Scope
    grant: Grant | None = None  # set when the request was approved (auto or by quorum)
    auto_rule: str | None = None


@dataclass(frozen=True)
class VoteOutcome:
    request: AccessRequest
    scope: Scope
    approvals: int
    decided: bool
    grant: Grant | None = None


@dataclass(frozen=True)
class Mine:
    pending: list[AccessRequest]
    active: list[Grant]


class RequestService:
    def __init__(
        self,
        *,
        guilds: GuildDirectory,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        decisions: DecisionService,
        grants: GrantServiceLike,
        notifier: NotifierLike,
    ) -> None:
        self._guilds = guilds
        self.policy = guilds.policy
        self._sessions = session_factory
        self._clock = clock
        self._decisions = decisions
        self._grants = grants
        self._notifier = notifier

    # ---- lookups shared by commands -------------------------------------------------------

    def guild_policy(self, guild: discord.Guild) -> GuildPolicy:
        gp = self._guilds.get(guild.id)
        if gp is None:
            raise BadInput(
                "This server has no Warden policy. A server admin must add a [guild] section "
                f"for '{guild.name}' (or {guild.id}) to config.toml."
            )
        return gp

    def requestable_scopes(self, member: discord.Member) -> list[Scope]:
        return [s for s in self._guilds.scopes(member.guild.id) if may_request(s, member)]

    def find_scope(self, guild: discord.Guild, scope_id: str) -> Scope | None:
        return self._guilds.scope(guild.id, scope_id)

    def scope_for(self, guild: discord.Guild, scope_id: str, member: discord.Member | None = None) -> Scope:
        gp = self.guild_policy(guild)
        scope = self.policy.scope(gp, scope_id.strip())
        if scope is None:
            names = [
                s.id for s in (self.requestable_scopes(member) if member else self.policy.scopes_for(gp))
            ]
            choices = ", ".join(f"`{n}`" for n in names) or "none"
            raise BadInput(
                f"There is no scope named `{scope_id}`. Scopes you can request: {choices}. "
                "Pick one from the list."
            )
        return scope

    # ---- validation -----------------------------------------------------------------------

    def _duration(self, scope: Scope, text: str | None) -> dt.timedelta:
        if text is None or not text.strip():
            return scope.default_duration
        try:
            duration = parse_duration(text)
        except DurationError as exc:
            raise BadInput(f"Duration: {exc}") from None
        if duration > scope.max_duration:
            raise BadInput(
                f"{format_duration(duration)} is longer than `{scope.id}` allows "
                f"(at most {format_duration(scope.max_duration)}). Ask for "
                f"{format_duration(scope.max_duration)} or less."
            )
        return duration

    @staticmethod
    def _reason(scope: Scope, text: str | None) -> str:
        reason = (text or "").strip()
        if scope.reason_required and not reason:
            raise BadInput(f"`{scope.id}` needs a reason. Say briefly why you need it and ask again.")
        if len(reason) > MAX_REASON_LENGTH:
            raise BadInput(
                f"Your reason is {len(reason)} characters long; the limit is {MAX_REASON_LENGTH} so that it "
                "fits, with the grant id, in Discord's 512-character audit-log reason. Shorten it and ask again."
            )
        return reason

    @staticmethod
    def _subject_allowed(scope: Scope, subject: discord.Member) -> None:
        if subject.bot and not scope.allows_bots():
            raise BadInput(
                f"`{scope.id}` is for members, not bots, and {subject.mention} is a bot. "
                "Use a scope whose subjects include bots."
            )
        if not subject.bot and not scope.allows_members():
            raise BadInput(
                f"`{scope.id}` is a bot scope upgrade: its subject must be a bot, and {subject.mention} "
                "is not one. Name the bot with `for:`."
            )

    def check_grantable(self, guild: discord.Guild, scope: Scope) -> tuple[str, int, int, int]:
        """Would Discord accept this grant? Returns (kind, target id, allow bits, deny bits)."""
        me = guild.me
        if scope.kind == "role":
            role = resolve_role(guild, scope.role)
            if role is None:
                raise CannotGrant(
                    f"`{scope.id}` names the role `{scope.role}`, which does not exist in this server. "
                    "A server admin must fix the policy or create the role."
                )
            if role.managed or role.is_default():
                raise CannotGrant(
                    f"{role.mention} is managed by an integration (or is @everyone) and cannot be given to "
                    "anyone. A server admin must point the scope at an ordinary role."
                )
            if not me.guild_permissions.manage_roles:
                raise CannotGrant(
                    "Warden lacks the Manage Roles permission, so Discord would refuse (50013). "
                    "A server admin must give Warden's role Manage Roles."
                )
            if role >= me.top_role:
                raise CannotGrant(
                    f"{role.mention} is not below Warden's highest role ({me.top_role.mention}), so Discord "
                    "would refuse (50013). A server admin must move Warden's role above it."
                )
            if scope.permission_ceiling is not None:
                ceiling = permissions_from_names(scope.permission_ceiling).value
                extra = permission_names(role.permissions.value & ~ceiling)
                if extra:
                    raise CannotGrant(
                        f"{role.mention} carries permissions beyond the scope's ceiling: {', '.join(extra)}. "
                        "A server admin must remove them from the role or raise the ceiling."
                    )
            return "role", role.id, 0, 0
        channel = resolve_channel(guild, scope.channel)
        if channel is None:
            raise CannotGrant(
                f"`{scope.id}` names the channel `{scope.channel}`, which does not exist here. "
                "A server admin must fix the policy."
            )
        perms = channel.permissions_for(me)
        if not (perms.manage_roles or perms.administrator):
            raise CannotGrant(
                f"Warden cannot edit permissions in {channel.mention} (it needs Manage Permissions there). "
                "A server admin must allow it."
            )
        allow = discord.Permissions(**dict.fromkeys(scope.allow, True))
        deny = discord.Permissions(**dict.fromkeys(scope.deny, True))
        missing = permission_names(allow.value & ~perms.value)
        if missing and not perms.administrator:
            raise CannotGrant(
                f"Discord only lets Warden grant permissions it has itself in {channel.mention}; "
                f"it lacks: {', '.join(missing)}."
            )
        return "channel", channel.id, allow.value, deny.value

    async def _abuse_guard(self, session: AsyncSession, gp: GuildPolicy, member: discord.Member) -> None:
        now = self._clock.now()
        pending = await session.scalar(
            select(func.count())
            .select_from(AccessRequest)
            .where(
                AccessRequest.guild_id == member.guild.id,
                AccessRequest.requester_id == member.id,
                AccessRequest.status == RequestStatus.PENDING,
            )
        )
        if pending is not None and pending >= gp.max_pending_per_member:
            raise TooSoon(
                f"You already have {pending} pending requests (the limit is {gp.max_pending_per_member}). "
                "Wait for a decision, or withdraw one with `/jit cancel`."
            )
        last = await session.scalar(
            select(func.max(AccessRequest.created_at)).where(
                AccessRequest.guild_id == member.guild.id, AccessRequest.requester_id == member.id
            )
        )
        if last is not None:
            if last.tzinfo is None:
                last = last.replace(tzinfo=dt.UTC)
            again = last + gp.request_cooldown
            if again > now:
                raise TooSoon(f"You are asking too fast. You may ask again {ts(again, 'R')}.")

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
        gp = self.guild_policy(guild)
        scope = self.scope_for(guild, scope_id, member)
        if not may_request(scope, member):
            raise NotAllowed(
                f"You may not request `{scope.id}`: only {describe_refs(guild, scope.requesters)} can. "
                "Ask a server admin if you need it."
            )
        length = self._duration(scope, duration)
        why = self._reason(scope, reason)
        subject = subject or member
        self._subject_allowed(scope, subject)
        kind, target_id, allow, deny = self.check_grantable(guild, scope)
        auto = next(
            (
                (i, rule)
                for i, rule in enumerate(scope.auto_approve)
                if is_member_of(member, rule.members_of) and length <= rule.max_duration
            ),
            None,
        )
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            await self._abuse_guard(session, gp, member)
            await self._no_duplicate(session, guild.id, scope, subject)
            req = AccessRequest(
                guild_id=guild.id,
                scope_id=scope.id,
                kind=RequestKind.NEW,
                requester_id=member.id,
                subject_id=subject.id,
                subject_is_bot=subject.bot,
                duration_seconds=int(length.total_seconds()),
                reason=why,
                status=RequestStatus.PENDING,
                approvals_required=scope.approvals_required,
                created_at=now,
                pending_until=now + gp.pending_ttl,
                votes=[],
            )
            session.add(req)
            await session.flush()
            await self._decisions.record(
                session,
                Decision(
                    outcome=Outcome.REQUESTED,
                    rule=f"scope.{scope.id}",
                    reason=f"{member} asked for {scope.id} for {format_duration(length)}"
                    + (f" for {subject}" if subject.id != member.id else "")
                    + ".",
                    guild_id=guild.id,
                    actor_id=member.id,
                    request_id=req.id,
                    proof=self._request_proof(req, scope, member),
                ),
            )
            grant = None
            auto_rule = None
            if auto is not None:
                auto_rule = f"scope.{scope.id}.auto_approve[{auto[0]}]"
                grant = await self._approve(
                    session,
                    req,
                    scope,
                    kind,
                    target_id,
                    allow,
                    deny,
                    now,
                    outcome=Outcome.AUTO_APPROVED,
                    rule=auto_rule,
                    reason=f"{member} is a member of {auto[1].members_of} and asked for no more than "
                    f"{format_duration(auto[1].max_duration)}, so no votes are needed.",
                )
        if grant is None:
            await self._notifier.request_created(guild, req, scope)
        else:
            # Auto-approved: no card was posted; the grant notice tells the requester.
            grant = await self._grants.apply(grant.id)
        return RequestOutcome(req, scope, grant, auto_rule)

    async def _no_duplicate(
        self, session: AsyncSession, guild_id: int, scope: Scope, subject: discord.Member
    ) -> None:
        pending = await session.scalar(
            select(AccessRequest.id).where(
                AccessRequest.guild_id == guild_id,
                AccessRequest.scope_id == scope.id,
                AccessRequest.subject_id == subject.id,
                AccessRequest.status == RequestStatus.PENDING,
            )
        )
        if pending is not None:
            raise AlreadyDecided(
                f"Request #{pending} for `{scope.id}` for {subject.mention} is already waiting for approval. "
                "Wait for it, or withdraw it with `/jit cancel`."
            )
        active = await session.scalar(
            select(Grant).where(
                Grant.guild_id == guild_id,
                Grant.scope_id == scope.id,
                Grant.subject_id == subject.id,
                Grant.status.in_([GrantStatus.ACTIVE, GrantStatus.APPROVED]),
            )
        )
        if active is not None:
            until = f" until {ts(active.expires_at)}" if active.expires_at else ""
            raise AlreadyDecided(
                f"{subject.mention} already holds `{scope.id}` (grant #{active.id}){until}. "
                f"To keep it longer use `/jit extend grant:{active.id}`."
            )

    def _request_proof(
        self, req: AccessRequest, scope: Scope, requester: discord.Member
    ) -> dict[str, object]:
        return {
            "request": req.id,
            "scope": scope.id,
            "kind": req.kind,
            "requester": req.requester_id,
            "subject": req.subject_id,
            "subject_is_bot": req.subject_is_bot,
            "duration": format_duration(dt.timedelta(seconds=req.duration_seconds)),
            "reason": req.reason,
            "approvals_required": req.approvals_required,
            "requester_roles": [r.id for r in requester.roles if not r.is_default()],
        }

    async def _approve(
        self,
        session: AsyncSession,
        req: AccessRequest,
        scope: Scope,
        kind: str,
        target_id: int,
        allow: int,
        deny: int,
        now: dt.datetime,
        *,
        outcome: Outcome,
        rule: str,
        reason: str,
        actor_id: int | None = None,
    ) -> Grant | None:
        """Mark a locked, pending request approved and create its grant (or lengthen one)."""
        req.status = RequestStatus.APPROVED
        req.decided_at = now
        req.decided_by = actor_id
        req.decision_rule = rule
        votes = votes_proof(req)
        if req.kind == RequestKind.EXTENSION and req.extends_grant_id is not None:
            grant = await session.get(Grant, req.extends_grant_id, with_for_update=True)
            if grant is None or grant.status != GrantStatus.ACTIVE or grant.expires_at is None:
                req.status = RequestStatus.CANCELLED
                req.decision_note = "the grant it extends has already ended"
                return None
            grant.expires_at = grant.expires_at + dt.timedelta(seconds=req.duration_seconds)
            grant.duration_seconds += req.duration_seconds
            grant.reminded_at = None
            await self._decisions.record(
                session,
                Decision(
                    outcome=Outcome.EXTENDED,
                    rule=rule,
                    reason=reason + f" Grant #{grant.id} now ends {grant.expires_at.isoformat()}.",
                    guild_id=req.guild_id,
                    actor_id=actor_id,
                    request_id=req.id,
                    grant_id=grant.id,
                    proof={
                        "request": req.id,
                        "grant": grant.id,
                        "scope": scope.id,
                        "subject": grant.subject_id,
                        "added": format_duration(dt.timedelta(seconds=req.duration_seconds)),
                        "expires_at": grant.expires_at,
                        "votes": votes,
                    },
                ),
            )
            return grant
        grant = Grant(
            guild_id=req.guild_id,
            scope_id=scope.id,
            request_id=req.id,
            subject_id=req.subject_id,
            subject_is_bot=req.subject_is_bot,
            kind=kind,
            target_id=target_id,
            allow_bits=allow,
            deny_bits=deny,
            status=GrantStatus.APPROVED,
            breakglass=req.kind == RequestKind.BREAKGLASS,
            duration_seconds=req.duration_seconds,
            created_at=now,
        )
        session.add(grant)
        await session.flush()
        await self._decisions.record(
            session,
            Decision(
                outcome=outcome,
                rule=rule,
                reason=reason,
                guild_id=req.guild_id,
                actor_id=actor_id,
                request_id=req.id,
                grant_id=grant.id,
                proof={
                    "request": req.id,
                    "grant": grant.id,
                    "scope": scope.id,
                    "subject": req.subject_id,
                    "requester": req.requester_id,
                    "duration": format_duration(dt.timedelta(seconds=req.duration_seconds)),
                    "votes": votes,
                },
            ),
        )
        return grant

    async def _locked_request(self, session: AsyncSession, guild_id: int, request_id: int) -> AccessRequest:
        req = await session.get(AccessRequest, request_id, with_for_update=True, populate_existing=True)
        if req is None or req.guild_id != guild_id:
            raise NotFound(
                f"There is no request #{request_id} in this server. Check the id with `/jit mine`."
            )
        return req

    def _still_pending(self, req: AccessRequest) -> None:
        if req.status != RequestStatus.PENDING:
            raise AlreadyDecided(f"Request #{req.id} is already {req.status}; nothing changed.")
        if req.pending_until <= self._clock.now():
            raise AlreadyDecided(
                f"Request #{req.id} has expired: nobody decided in time. The requester can ask again."
            )

    async def check_can_vote(self, approver: discord.Member, request_id: int) -> None:
        """The vote's eligibility rules without voting (before asking a denier for a reason)."""
        async with transaction(self._sessions) as session:
            req = await session.get(AccessRequest, request_id)
            if req is None or req.guild_id != approver.guild.id:
                raise NotFound(
                    f"There is no request #{request_id} in this server. Check the id with `/jit mine`."
                )
            self._eligible(approver, req, self.scope_for(approver.guild, req.scope_id))

    def _eligible(self, approver: discord.Member, req: AccessRequest, scope: Scope) -> None:
        self._still_pending(req)
        if not may_approve(scope, approver):
            raise NotAllowed(
                f"Only {describe_refs(approver.guild, scope.approvers)} can decide on `{scope.id}`; "
                "your click was not counted."
            )
        if approver.id in (req.requester_id, req.subject_id) and not scope.self_approval:
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

    async def vote(
        self, approver: discord.Member, request_id: int, approve: bool, reason: str | None = None
    ) -> VoteOutcome:
        guild = approver.guild
        now = self._clock.now()
        note = (reason or "").strip()
        if not approve and not note:
            raise BadInput("A denial needs a reason, so the requester knows what to do next.")
        if len(note) > MAX_REASON_LENGTH:
            raise BadInput(
                f"Your reason is {len(note)} characters; the limit is {MAX_REASON_LENGTH}. Shorten it."
            )
        grant: Grant | None = None
        async with transaction(self._sessions) as session:
            req = await self._locked_request(session, guild.id, request_id)
            scope = self.scope_for(guild, req.scope_id)
            self._eligible(approver, req, scope)
            vote = Vote(
                request_id=req.id,
                approver_id=approver.id,
                approve=approve,
                reason=note or None,
                created_at=now,
            )
            req.votes.append(vote)
            try:
                await session.flush()
            except IntegrityError:
                raise AlreadyDecided("Your vote on this request was already counted.") from None
            approvals = sum(1 for v in req.votes if v.approve)
            denials = sum(1 for v in req.votes if not v.approve)
            await self._decisions.record(
                session,
                Decision(
                    outcome=Outcome.VOTED,
                    rule=f"scope.{scope.id}.approvers",
                    reason=f"{approver} {'approved' if approve else 'denied'} request #{req.id} "
                    f"({approvals} of {req.approvals_required} approvals).",
                    guild_id=guild.id,
                    actor_id=approver.id,
                    request_id=req.id,
                    proof={
                        "request": req.id,
                        "approver": approver.id,
                        "approve": approve,
                        "at": now,
                        "reason": note or None,
                        "approvals": approvals,
                        "required": req.approvals_required,
                    },
                ),
            )
            decided = False
            if not approve and (scope.deny_ends_request or denials >= req.approvals_required):
                decided = True
                req.status = RequestStatus.DENIED
                req.decided_at = now
                req.decided_by = approver.id
                req.decision_note = note
                req.decision_rule = f"scope.{scope.id}.deny_ends_request"
                await self._decisions.record(
                    session,
                    Decision(
                        outcome=Outcome.DENIED,
                        rule=f"scope.{scope.id}.deny_ends_request",
                        reason=f"{approver} denied request #{req.id}: {note}",
                        guild_id=guild.id,
                        actor_id=approver.id,
                        request_id=req.id,
                        proof={
                            "request": req.id,
                            "scope": scope.id,
                            "requester": req.requester_id,
                            "subject": req.subject_id,
                            "denied_by": approver.id,
                            "reason": note,
                            "votes": votes_proof(req),
                        },
                    ),
                )
            elif approvals >= req.approvals_required:
                decided = True
                kind, target_id, allow, deny = self.check_grantable(guild, scope)
                grant = await self._approve(
                    session,
                    req,
                    scope,
                    kind,
                    target_id,
                    allow,
                    deny,
                    now,
                    outcome=Outcome.APPROVED,
                    rule=f"scope.{scope.id}.approvals_required",
                    reason=f"Request #{req.id} reached its quorum of {req.approvals_required} approval"
                    f"{'s' if req.approvals_required != 1 else ''}.",
                    actor_id=approver.id,
                )
        if decided and grant is not None and req.kind != RequestKind.EXTENSION:
            grant = await self._grants.apply(grant.id)  # its notice updates the card once applied
        elif decided:
            await self._notifier.request_decided(guild, req, scope)
            if grant is not None:
                await self._notifier.grant_extended(guild, grant, req)
        else:
            await self._notifier.request_updated(guild, req, scope)
        return VoteOutcome(req, scope, approvals, decided, grant)

    async def cancel(self, member: discord.Member, request_id: int) -> AccessRequest:
        guild = member.guild
        async with transaction(self._sessions) as session:
            req = await self._locked_request(session, guild.id, request_id)
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
                session,
                Decision(
                    outcome=Outcome.CANCELLED,
                    rule="requester.cancel",
                    reason=f"{member} withdrew request #{req.id}.",
                    guild_id=guild.id,
                    actor_id=member.id,
                    request_id=req.id,
                    proof={"request": req.id, "scope": req.scope_id, "requester": req.requester_id},
                ),
            )
        scope = self.scope_for(guild, req.scope_id)
        await self._notifier.request_decided(guild, req, scope)
        return req

    async def extend(
        self, member: discord.Member, grant_id: int, duration: str, reason: str | None
    ) -> RequestOutcome:
        guild = member.guild
        gp = self.guild_policy(guild)
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            grant = await session.get(Grant, grant_id)
            if grant is None or grant.guild_id != guild.id:
                raise NotFound(
                    f"There is no grant #{grant_id} in this server. Check the id with `/jit mine`."
                )
            scope = self.scope_for(guild, grant.scope_id)
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
            length = self._duration(scope, duration)
            why = self._reason(scope, reason)
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
            await self._abuse_guard(session, gp, member)
            req = AccessRequest(
                guild_id=guild.id,
                scope_id=scope.id,
                kind=RequestKind.EXTENSION,
                requester_id=member.id,
                subject_id=grant.subject_id,
                subject_is_bot=grant.subject_is_bot,
                duration_seconds=int(length.total_seconds()),
                reason=why,
                status=RequestStatus.PENDING,
                approvals_required=scope.approvals_required,
                extends_grant_id=grant.id,
                created_at=now,
                pending_until=min(now + gp.pending_ttl, grant.expires_at),
                votes=[],
            )
            session.add(req)
            await session.flush()
            await self._decisions.record(
                session,
                Decision(
                    outcome=Outcome.REQUESTED,
                    rule=f"scope.{scope.id}",
                    reason=f"{member} asked to extend grant #{grant.id} by {format_duration(length)}.",
                    guild_id=guild.id,
                    actor_id=member.id,
                    request_id=req.id,
                    grant_id=grant.id,
                    proof=self._request_proof(req, scope, member) | {"extends_grant": grant.id},
                ),
            )
        await self._notifier.request_created(guild, req, scope)
        return RequestOutcome(req, scope)

    async def breakglass(self, member: discord.Member, scope_id: str, reason: str | None) -> RequestOutcome:
        guild = member.guild
        gp = self.guild_policy(guild)
        scope = self.scope_for(guild, scope_id, member)
        if not scope.breakglass:
            raise NotAllowed(
                f"`{scope.id}` does not allow break-glass. Use `/jit request` and wait for approval."
            )
        if not may_request(scope, member):
            raise NotAllowed(
                f"You may not request `{scope.id}`: only {describe_refs(guild, scope.requesters)} can."
            )
        why = self._reason(scope, reason)
        if not why:
            raise BadInput("Break-glass always needs a reason; approvers will review it.")
        kind, target_id, allow, deny = self.check_grantable(guild, scope)
        now = self._clock.now()
        length = scope.default_duration
        async with transaction(self._sessions) as session:
            await self._no_duplicate(session, guild.id, scope, member)
            req = AccessRequest(
                guild_id=guild.id,
                scope_id=scope.id,
                kind=RequestKind.BREAKGLASS,
                requester_id=member.id,
                subject_id=member.id,
                subject_is_bot=member.bot,
                duration_seconds=int(length.total_seconds()),
                reason=why,
                status=RequestStatus.PENDING,
                approvals_required=0,
                created_at=now,
                pending_until=now + gp.pending_ttl,
                votes=[],
            )
            session.add(req)
            await session.flush()
            grant = await self._approve(
                session,
                req,
                scope,
                kind,
                target_id,
                allow,
                deny,
                now,
                outcome=Outcome.BREAKGLASS,
                rule=f"scope.{scope.id}.breakglass",
                reason=f"{member} used break-glass on {scope.id} without approval: {why}. "
                "Approvers must review it.",
                actor_id=member.id,
            )
        assert grant is not None
        grant = await self._grants.apply(grant.id)
        return RequestOutcome(req, scope, grant)

    async def acknowledge_review(self, approver: discord.Member, grant_id: int) -> Grant:
        guild = approver.guild
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            grant = await session.get(Grant, grant_id, with_for_update=True, populate_existing=True)
            if grant is None or grant.guild_id != guild.id or not grant.breakglass:
                raise NotFound(f"There is no break-glass grant #{grant_id} to review in this server.")
            scope = self.scope_for(guild, grant.scope_id)
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
                Decision(
                    outcome=Outcome.REVIEWED,
                    rule=f"scope.{scope.id}.breakglass",
                    reason=f"{approver} reviewed break-glass grant #{grant.id}.",
                    guild_id=guild.id,
                    actor_id=approver.id,
                    grant_id=grant.id,
                    request_id=grant.request_id,
                    proof={
                        "grant": grant.id,
                        "scope": scope.id,
                        "subject": grant.subject_id,
                        "reviewed_by": approver.id,
                        "at": now,
                    },
                ),
            )
        return grant

    async def mine(self, member: discord.Member) -> Mine:
        guild = member.guild
        async with transaction(self._sessions) as session:
            pending = (
                await session.scalars(
                    select(AccessRequest)
                    .where(
                        AccessRequest.guild_id == guild.id,
                        AccessRequest.requester_id == member.id,
                        AccessRequest.status == RequestStatus.PENDING,
                    )
                    .order_by(AccessRequest.id)
                )
            ).all()
            active = (
                await session.scalars(
                    select(Grant)
                    .where(
                        Grant.guild_id == guild.id,
                        Grant.subject_id == member.id,
                        Grant.status.in_([GrantStatus.ACTIVE, GrantStatus.APPROVED, GrantStatus.REMOVING]),
                    )
                    .order_by(Grant.id)
                )
            ).all()
        return Mine(list(pending), list(active))

    async def get(self, request_id: int) -> AccessRequest | None:
        async with transaction(self._sessions) as session:
            return await session.get(AccessRequest, request_id)

    async def set_card(self, request_id: int, channel_id: int, message_id: int) -> None:
        async with transaction(self._sessions) as session:
            await session.execute(
                update(AccessRequest)
                .where(AccessRequest.id == request_id)
                .values(card_channel_id=channel_id, card_message_id=message_id)
            )

    # ---- scheduled sweeps (idempotent, safe with two processes) -----------------------------

    async def expire_pending(self, limit: int = 100) -> list[AccessRequest]:
        """Requests nobody decided within the pending TTL become expired, each exactly once."""
        now = self._clock.now()
        expired: list[AccessRequest] = []
        async with transaction(self._sessions) as session:
            due = (
                await session.scalars(
                    select(AccessRequest.id)
                    .where(AccessRequest.status == RequestStatus.PENDING, AccessRequest.pending_until <= now)
                    .order_by(AccessRequest.pending_until)
                    .limit(limit)
                )
            ).all()
        for rid in due:
            async with transaction(self._sessions) as session:
                claimed = await session.execute(
                    update(AccessRequest)
                    .where(AccessRequest.id == rid, AccessRequest.status == RequestStatus.PENDING)
                    .values(status=RequestStatus.EXPIRED, decided_at=now, decision_rule="guild.pending_ttl")
                )
                if rowcount(claimed) != 1:
                    continue  # another process got there first
                req = await session.get(AccessRequest, rid, populate_existing=True)
                assert req is not None
                await self._decisions.record(
                    session,
                    Decision(
                        outcome=Outcome.REQUEST_EXPIRED,
                        rule="guild.pending_ttl",
                        reason=f"Nobody decided request #{rid} before its deadline, so it expired.",
                        guild_id=req.guild_id,
                        request_id=rid,
                        proof={
                            "request": rid,
                            "scope": req.scope_id,
                            "requester": req.requester_id,
                            "created_at": req.created_at,
                            "deadline": req.pending_until,
                            "approvals": sum(1 for v in req.votes if v.approve),
                            "required": req.approvals_required,
                        },
                    ),
                )
            expired.append(req)
            await self._notifier.request_expired(req)
        return expired

    async def remind_approvers(self, limit: int = 100) -> list[AccessRequest]:
        """Half-way through the pending TTL, remind approvers once."""
        now = self._clock.now()
        reminded: list[AccessRequest] = []
        async with transaction(self._sessions) as session:
            rows = (
                await session.scalars(
                    select(AccessRequest)
                    .where(
                        AccessRequest.status == RequestStatus.PENDING,
                        AccessRequest.approvers_reminded_at.is_(None),
                        AccessRequest.pending_until > now,
                    )
                    .order_by(AccessRequest.id)
                    .limit(limit * 4)
                )
            ).all()
        for req in rows:
            if req.created_at + (req.pending_until - req.created_at) / 2 > now:
                continue
            async with transaction(self._sessions) as session:
                claimed = await session.execute(
                    update(AccessRequest)
                    .where(AccessRequest.id == req.id, AccessRequest.approvers_reminded_at.is_(None))
                    .values(approvers_reminded_at=now)
                )
            if rowcount(claimed) == 1:
                reminded.append(req)
                await self._notifier.remind_approvers(req)
            if len(reminded) >= limit:
                break
        return reminded


# Structural types for the collaborators, so this module does not import the Discord-facing ones.
class GrantServiceLike(Protocol):
    async def apply(self, grant_id: int) -> Grant: ...


class NotifierLike(Protocol):
    async def request_created(self, guild: discord.Guild, req: AccessRequest, scope: Scope) -> None: ...
    async def request_decided(self, guild: discord.Guild, req: AccessRequest, scope: Scope) -> None: ...
    async def request_updated(self, guild: discord.Guild, req: AccessRequest, scope: Scope) -> None: ...
    async def request_expired(self, req: AccessRequest) -> None: ...
    async def remind_approvers(self, req: AccessRequest) -> None: ...
    async def grant_extended(self, guild: discord.Guild, grant: Grant, req: AccessRequest) -> None: ...
