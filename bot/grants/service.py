"""Grants: applying access in Discord, ending it, and never letting it outlive its expiry.

The database is the source of truth. A grant is claimed with a conditional UPDATE
before Warden touches Discord, so when two processes share one database each grant
is applied and removed exactly once. A removal that fails stays due (with backoff)
until it succeeds; after a few failures a person is told in the governance channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import discord
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AccessRequest, Grant, GrantStatus
from bot.db.session import fresh
from bot.decisions import outcomes
from bot.decisions.service import Outcome
from bot.discord_io.ops import DISCORD_ERRORS, GrantTarget, PriorState, describe_error, uncertain
from bot.durations import format_duration
from bot.escape import typed
from bot.grantability import describe_refs, may_approve
from bot.services.base import Core, Service, claim, transaction
from bot.services.batching import Batched
from bot.services.errors import AlreadyDecided, NotAllowed, NotFound, WardenError
from bot.tokens.service import IssuedToken, TokenService

log = logging.getLogger(__name__)

# How long a removal may hold its grant: longer than one removal with all its retries (seconds),
# and short, because a process that dies after claiming an expiry delays that removal until the
# claim lapses: claim + one sweep interval must stay within the promise of approved end + 60 s.
CLAIM_FOR = dt.timedelta(seconds=30)
# How long an apply may hold its grant. Short, because a process that dies mid-apply must not delay
# the grant's end: once it lapses, a sweep re-applies (same clock) or, past the end, removes it.
APPLY_CLAIM = dt.timedelta(seconds=30)
STUCK_AFTER_ATTEMPTS = 3
MAX_BACKOFF = dt.timedelta(minutes=10)
# A grant still "approved" this long after it was decided was interrupted mid-apply.
STALE_APPROVED = dt.timedelta(minutes=2)
# Removals in flight at once during a sweep: enough to keep Discord's 50 requests/s busy while each
# waits on its round trip and commit (8 reached ~30/s in bench/); discord.py queues the rest per bucket.
REMOVAL_CONCURRENCY = 24
# How long one sweep keeps taking batches of due removals before it tells the holders and leaves the
# rest to the next sweep: long enough that a burst of expiries is removed first, at the rate limit.
DRAIN_SECONDS = 600.0


@dataclass(frozen=True)
class Claims:
    """How long claims last (``Tuning`` sets them; the defaults are production's)."""

    apply: dt.timedelta = APPLY_CLAIM
    removal: dt.timedelta = CLAIM_FOR
    stale_approved: dt.timedelta = STALE_APPROVED


def prior_of(grant: Grant) -> PriorState:
    return PriorState(held=bool(grant.prior_held), allow=grant.prior_allow, deny=grant.prior_deny)


def target_of(grant: Grant) -> GrantTarget:
    g = grant
    return GrantTarget(g.guild_id, g.subject_id, g.kind, g.target_id, g.allow_bits, g.deny_bits, prior_of(g))


def _lapsed(now: dt.datetime) -> Any:
    return or_(Grant.claimed_until.is_(None), Grant.claimed_until <= now)


def _endable(now: dt.datetime) -> Any:
    """Grants whose end a sweep may act on: active, or claimed by an apply that has since died."""
    return or_(
        Grant.status == GrantStatus.ACTIVE,
        and_(Grant.status == GrantStatus.APPLYING, _lapsed(now)),
    )


def backoff(attempts: int) -> dt.timedelta:
    return min(dt.timedelta(seconds=5 * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


async def _move(
    session: AsyncSession, grant_id: int, only_if: GrantStatus, **values: Any
) -> tuple[bool, Grant]:
    """Update a grant only if it is still in ``only_if`` (so exactly one process acts), then reload it."""
    done = await claim(session, Grant, Grant.id == grant_id, Grant.status == only_if, **values)
    grant = await fresh(session, Grant, grant_id)
    assert grant is not None
    return done, grant


@dataclass
class ExpirySweep:
    """What one expiry sweep did: grants that reached their end, removed from Discord, and still
    due (a removal failed; it is retried with backoff)."""

    expired: int = 0
    removed: int = 0
    still_due: int = 0


class GrantService(Service):
    def __init__(
        self,
        core: Core,
        *,
        ops: OpsLike,
        notifier: GrantNotifierLike,
        tokens: TokenService | None = None,
        claims: Claims | None = None,
    ) -> None:
        super().__init__(core)
        self._ops = ops
        self._notifier = notifier
        self._tokens = tokens
        self._claims = claims or Claims()

    async def _record(self, session: AsyncSession, grant: Grant, outcome: Outcome, **how: Any) -> None:
        """One ledger decision about a grant, in the caller's transaction."""
        await self._decisions.record(session, outcomes.about(grant, outcome, **how))

    def _audit_reason(self, grant: Grant, what: str, reason: str | None = None) -> str:
        base = f"Warden grant #{grant.id} (request #{grant.request_id}, scope {grant.scope_id}) {what}"
        return f"{base}: {reason}" if reason else base

    # ---- applying ---------------------------------------------------------------------------

    async def apply(self, grant_id: int) -> Grant:
        """Apply an approved grant in Discord.

        The grant is claimed first, in its own transaction, with its clock (the first moment the
        access may exist) and what the subject had before: a crash after that can neither restart
        the clock nor lose what removal must restore, and a revoke meanwhile is seen here.
        """
        async with transaction(self._sessions) as session:
            grant = await session.get(Grant, grant_id)
            if grant is None:
                raise NotFound(f"There is no grant #{grant_id}.")
            if grant.status != GrantStatus.APPROVED:
                return grant
            reason = (
                await session.scalar(select(AccessRequest.reason).where(AccessRequest.id == grant.request_id))
                if grant.request_id
                else None
            )
        return await self.apply_new(grant, reason)

    async def apply_new(self, grant: Grant, reason: str | None) -> Grant:
        """``apply`` for a grant its caller approved and committed a moment ago (a quorum, an auto-
        approval, break-glass), with its request's reason: no transaction to read them again. A
        revoke since then is still seen: the claim below matches only an approved grant."""
        if grant.status != GrantStatus.APPROVED:
            return grant
        try:
            # A token grant changes nothing in Discord: there is no prior state to record.
            prior = PriorState() if grant.kind == "token" else await self._ops.prior_state(target_of(grant))
        except DISCORD_ERRORS as exc:
            return await self._fail(grant, exc, only_if=GrantStatus.APPROVED)
        if prior.held and await self._overlapped(grant):
            prior = PriorState()  # held through another of Warden's grants: not standing access
        self._kill.reached("grant.apply.before_claim")
        now = self._clock.now()
        claim = {
            "status": GrantStatus.APPLYING,
            "applied_at": now,
            "expires_at": now + dt.timedelta(seconds=grant.duration_seconds),
            "claimed_until": now + self._claims.apply,
            "prior_recorded": True,
            "prior_held": prior.held if grant.kind == "role" else None,
            "prior_allow": prior.allow,
            "prior_deny": prior.deny,
        }
        async with transaction(self._sessions) as session:
            claimed, grant = await _move(session, grant.id, GrantStatus.APPROVED, **claim)
        if not claimed:
            return grant  # another process applies it, or it was revoked before it existed
        return await self._apply_claimed(grant, reason)

    async def _apply_claimed(self, grant: Grant, reason: str | None) -> Grant:
        """Make the claimed grant exist in Discord, then mark it active (its clock is already set)."""
        if grant.kind == "token":
            return await self._issue_token(grant)
        target, audit_text = target_of(grant), self._audit_reason(grant, "applied", reason)
        self._kill.reached("grant.apply.before_discord")
        try:
            await self._ops.apply(target, audit_text)
        except DISCORD_ERRORS as exc:
            return await self._fail(grant, exc, only_if=GrantStatus.APPLYING)
        self._kill.reached("grant.apply.after_discord")
        # Proof for the narrative: the entry Discord wrote in its own audit log for this change.
        audit_entry = None if target.changes_nothing else await self._ops.audit_entry_for(target, audit_text)
        held = (
            " The subject already held this role, so Warden changed nothing and will remove nothing."
            if target.changes_nothing
            else ""
        )
        text = (
            f"Warden applied grant #{grant.id} for "
            f"{format_duration(dt.timedelta(seconds=grant.duration_seconds))}; "
            f"the clock started when the access could first exist in Discord.{held}"
        )
        evidence: dict[str, object] | None = {"audit_log_entry": audit_entry} if audit_entry else None
        active = {"status": GrantStatus.ACTIVE, "claimed_until": None}
        done, grant = await self._settle(
            grant, active, Outcome.APPLIED, text, evidence, grant.subject_id, only_if=GrantStatus.APPLYING
        )
        if done:
            self._kill.reached("grant.apply.after_commit")
            await self._notifier.grant_applied(grant)
        elif grant.status == GrantStatus.REMOVING:
            # Revoked (or expired) while Discord was being changed: take it away now, not never.
            await self._release_and_remove(grant)
        return grant

    async def _issue_token(self, grant: Grant) -> Grant:
        """A token scope's grant: issue its token, DM it once, and only then call the grant active.

        A token that cannot be delivered (closed DMs, 50007) is revoked at once and the grant fails
        visibly — on the card, to the requester and in the governance channel — never silently.
        """
        assert grant.expires_at is not None
        if self._tokens is None:
            return await self._not_issued(grant, "this Warden has no token service")
        # An apply that ran before and died may have issued one: it was never confirmed, so it ends.
        await self._tokens.revoke_for_grant(grant.id, reason=f"grant #{grant.id} was applied again")
        try:
            issued = await self._tokens.issue(
                guild_id=grant.guild_id,
                scope_id=grant.scope_id,
                subject_id=grant.subject_id,
                grant_id=grant.id,
                ttl=grant.expires_at - self._clock.now(),
                not_after=grant.expires_at,
            )
        except WardenError as exc:
            return await self._not_issued(grant, str(exc))
        problem = await self._notifier.deliver_token(grant, issued)
        if problem is not None:
            await self._tokens.revoke_for_grant(grant.id, reason=f"could not be delivered: {problem}")
            return await self._not_issued(grant, f"the token could not be delivered by DM: {problem}")
        text = (
            f"Warden issued access token {issued.info.id} for grant #{grant.id} and delivered it once, by DM, "
            f"to its holder; it is valid for {format_duration(grant.expires_at - issued.info.created_at)} "
            "and ends with the grant. Only its hash is kept."
        )
        evidence: dict[str, object] = {"token_id": issued.info.id, "token_expires_at": issued.info.expires_at}
        active = {"status": GrantStatus.ACTIVE, "claimed_until": None}
        done, grant = await self._settle(
            grant, active, Outcome.APPLIED, text, evidence, grant.subject_id, only_if=GrantStatus.APPLYING
        )
        if done:
            await self._notifier.grant_applied(grant)
        elif grant.status == GrantStatus.REMOVING:
            await self._release_and_remove(grant)  # revoked meanwhile: its token ends now
        return grant

    async def _not_issued(self, grant: Grant, why: str) -> Grant:
        now = self._clock.now()
        values = {"status": GrantStatus.FAILED, "ended_at": now, "last_error": why, "end_reason": why}
        reason = (
            f"Warden could not give grant #{grant.id} its access token ({why}), so no token is valid and "
            f"no access was given. <@{grant.subject_id}> should allow direct messages from this server's "
            "members and request again."
        )
        done, grant = await self._settle(
            grant, values, Outcome.FAILED, reason, {"error": why}, only_if=GrantStatus.APPLYING
        )
        if done:
            await self._notifier.grant_failed(grant)
        elif grant.status == GrantStatus.REMOVING:
            await self._release_and_remove(grant)
        return grant

    async def _release_and_remove(self, grant: Grant) -> None:
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            _, grant = await _move(
                session, grant.id, GrantStatus.REMOVING, claimed_until=now + self._claims.removal
            )
        await self._remove_claimed(grant)

    async def _fail(self, grant: Grant, exc: BaseException, *, only_if: GrantStatus) -> Grant:
        why = describe_error(exc)
        log.warning(
            "grant apply failed", extra={"grant_id": grant.id, "guild_id": grant.guild_id, "error": why}
        )
        now = self._clock.now()
        if only_if == GrantStatus.APPLYING and uncertain(exc):
            # The change may have reached Discord: end it like any grant, so a removal makes sure.
            values: dict[str, Any] = {
                "status": GrantStatus.REMOVING,
                "final_status": GrantStatus.FAILED,
                "ended_at": now,
                "last_error": why,
                "end_reason": why,
                "claimed_until": None,
                "next_attempt_at": None,
            }
            reason = (
                f"Warden could not confirm that grant #{grant.id} was applied ({why}), so it counts as not "
                "given, and Warden removes whatever may have reached Discord."
            )
        else:
            values = {"status": GrantStatus.FAILED, "ended_at": now, "last_error": why, "end_reason": why}
            reason = f"Warden could not apply grant #{grant.id}, so no access was given. {why}."
        done, grant = await self._settle(
            grant, values, Outcome.FAILED, reason, {"error": why}, only_if=only_if
        )
        if done:
            await self._notifier.grant_failed(grant)
        elif grant.status == GrantStatus.REMOVING and only_if == GrantStatus.APPLYING:
            await self._release_and_remove(grant)
        return grant

    async def _settle(
        self,
        grant: Grant,
        values: dict[str, Any],
        outcome: Outcome,
        reason: str,
        extra: dict[str, object] | None = None,
        actor_id: int | None = None,
        *,
        only_if: GrantStatus,
    ) -> tuple[bool, Grant]:
        """A grant being applied becomes active or failed, and that is recorded, exactly once."""
        async with transaction(self._sessions) as session:
            done, grant = await _move(session, grant.id, only_if, **values)
            if done:
                how = {
                    "rule": f"scope.{grant.scope_id}",
                    "reason": reason,
                    "extra": extra,
                    "actor_id": actor_id,
                }
                await self._record(session, grant, outcome, **how)
        return done, grant

    # ---- ending -----------------------------------------------------------------------------

    async def revoke(self, member: discord.Member, grant_id: int, reason: str | None) -> Grant:
        """End a grant early: its holder, or an approver of its scope."""
        guild = member.guild
        now = self._clock.now()
        note = typed(reason)[:400] or None
        async with transaction(self._sessions) as session:
            grant = await fresh(session, Grant, grant_id, lock=True)
            if grant is None or grant.guild_id != guild.id:
                raise NotFound(
                    f"There is no grant #{grant_id} in this server. Check the id with `/jit mine`."
                )
            scope = self._guilds.scope(guild.id, grant.scope_id)
            is_approver = scope is not None and may_approve(scope, member)
            if member.id != grant.subject_id and not is_approver:
                who = describe_refs(guild, scope.approvers) if scope else "its approvers"
                raise NotAllowed(f"Only the holder of grant #{grant.id} or {who} can revoke it.")
            if grant.status not in (GrantStatus.ACTIVE, GrantStatus.APPLYING, GrantStatus.APPROVED):
                raise AlreadyDecided(f"Grant #{grant.id} is already {grant.status}; nothing to revoke.")
            applying = grant.status == GrantStatus.APPLYING
            never_applied = grant.status == GrantStatus.APPROVED
            # Nothing exists in Discord yet: it simply ends. Being applied: the apply in flight keeps
            # its claim and removes it as soon as Discord answers (or a sweep does once the claim lapses).
            grant.status = GrantStatus.REVOKED if never_applied else GrantStatus.REMOVING
            grant.final_status = GrantStatus.REVOKED
            grant.ended_at = now
            grant.ended_by = member.id
            grant.end_reason = note or "revoked"
            if not applying:
                grant.claimed_until = now + self._claims.removal
            await self._record(
                session,
                grant,
                Outcome.REVOKED,
                rule=f"scope.{grant.scope_id}" + (".approvers" if member.id != grant.subject_id else ""),
                reason=f"{member} revoked grant #{grant.id}" + (f": {note}" if note else "."),
                actor_id=member.id,
                extra={"revoked_by": member.id, "reason": note},
            )
        if grant.status == GrantStatus.REMOVING and not applying:
            await self._remove_claimed(grant)
        return await self.get(grant.id) or grant

    async def end_early(
        self, grant_id: int, *, rule: str, reason: str, extra: dict[str, object] | None = None
    ) -> Grant | None:
        """Warden ends an active grant before its time (its holder idle, its token dormant).

        Claimed with a conditional UPDATE, so it happens once; recorded as ``revoked`` with the
        rule and narrative given; removed like any revoke, and the holder is told by DM.
        Returns None when the grant is no longer active (nothing to end).
        """
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            active = (Grant.id == grant_id, Grant.status == GrantStatus.ACTIVE)
            if not await claim(
                session, Grant, *active, **self._removal(GrantStatus.REVOKED, reason[:400], now)
            ):
                return None
            grant = await fresh(session, Grant, grant_id)
            assert grant is not None
            # "reason" in the proof: what the evidence report shows for an early end.
            proof = {"reason": reason} | (extra or {})
            await self._record(session, grant, Outcome.REVOKED, rule=rule, reason=reason, extra=proof)
        await self._remove_claimed(grant)
        return await self.get(grant.id) or grant

    def _removal(self, final: GrantStatus, reason: str, now: dt.datetime) -> dict[str, Any]:
        """What a claim for removal writes: the grant ends now as ``final``, once Discord no longer has it."""
        return {
            "status": GrantStatus.REMOVING,
            "final_status": final,
            "ended_at": now,
            "end_reason": reason,
            "claimed_until": now + self._claims.removal,
        }

    async def _claim_expiring(self, grant_ids: list[int], now: dt.datetime) -> dict[int, Grant]:
        """Claim grants past their end for removal and record each as expired (one transaction);
        returns those this call claimed (another process may have taken some)."""
        async with transaction(self._sessions) as session:
            claimed = await session.execute(
                update(Grant)
                .where(Grant.id.in_(grant_ids), Grant.expires_at <= now, _endable(now))
                .values(**self._removal(GrantStatus.EXPIRED, "expired", now))
                .returning(Grant.id)
                .execution_options(synchronize_session=False)
            )
            grants = await self._reload(session, list(claimed.scalars()))
            for grant in grants.values():
                await self._record(
                    session,
                    grant,
                    Outcome.EXPIRED,
                    rule=f"scope.{grant.scope_id}.max_duration",
                    reason=f"Grant #{grant.id} reached the end of its approved time, so it ends now and Warden removes it from Discord.",
                    actor_id=grant.subject_id,
                    extra={"ended_at": now},
                )
            return grants

    async def _claim_retry(self, grant_ids: list[int], now: dt.datetime) -> dict[int, Grant]:
        async with transaction(self._sessions) as session:
            claimed = await session.execute(
                update(Grant)
                .where(Grant.id.in_(grant_ids), Grant.status == GrantStatus.REMOVING, _lapsed(now))
                .values(claimed_until=now + self._claims.removal)
                .returning(Grant.id)
                .execution_options(synchronize_session=False)
            )
            return await self._reload(session, list(claimed.scalars()))

    @staticmethod
    async def _reload(session: AsyncSession, grant_ids: list[int]) -> dict[int, Grant]:
        if not grant_ids:
            return {}
        rows = await session.scalars(
            select(Grant)
            .where(Grant.id.in_(grant_ids))
            .order_by(Grant.id)
            .execution_options(populate_existing=True)
        )
        return {g.id: g for g in rows}

    async def _remove_claimed(
        self,
        grant: Grant,
        tell: Callable[[Grant], object] | None = None,
        *,
        overlapped: Callable[[Grant], Awaitable[bool]] | None = None,
        finish: Callable[[int], Awaitable[Grant | None]] | None = None,
    ) -> bool:
        """Remove a claimed grant from Discord; on failure it stays due with backoff.

        The holder is told at once, or handed to ``tell`` (a sweep tells everyone after removing).
        A sweep passes ``overlapped`` and ``finish`` that share one query or transaction among the
        removals in flight; alone, each is its own."""
        final = GrantStatus(grant.final_status or GrantStatus.REVOKED)
        verb = {GrantStatus.EXPIRED: "expired", GrantStatus.FAILED: "cleaned up"}.get(final, "revoked")
        flow = {GrantStatus.EXPIRED: "expire", GrantStatus.REVOKED: "revoke"}.get(final, "cleanup")
        self._kill.reached(f"grant.{flow}.before_discord")
        try:
            if grant.kind == "token":
                # Its tokens end with it (revoked, even when the grant expired: nothing may outlive it).
                if self._tokens is not None:
                    await self._tokens.revoke_for_grant(grant.id, reason=f"grant #{grant.id} {verb}")
            # Never claimed for applying (applied_at unset): nothing of it can exist in Discord.
            elif grant.applied_at is not None and not await (overlapped or self._overlapped)(grant):
                await self._ops.remove(target_of(grant), self._audit_reason(grant, verb, None))
        except DISCORD_ERRORS as exc:
            await self._removal_failed(grant, exc)
            return False
        self._kill.reached(f"grant.{flow}.after_discord")
        ended = await (finish or self._finish_one)(grant.id)
        self._kill.reached(f"grant.{flow}.after_commit")
        if ended is None:
            return True  # the grant row is gone: nobody left to tell
        if tell is None:
            await self._notifier.grant_ended(ended)
        else:
            tell(ended)
        return True

    async def _finish_one(self, grant_id: int) -> Grant | None:
        return (await self._finish([grant_id])).get(grant_id)

    async def _finish(self, grant_ids: list[int]) -> dict[int, Grant]:
        """Removed from Discord: each grant takes the status its end decided (one transaction)."""
        async with transaction(self._sessions) as session:
            await session.execute(
                update(Grant)
                .where(Grant.id.in_(grant_ids), Grant.status == GrantStatus.REMOVING)
                .values(status=Grant.final_status, claimed_until=None, next_attempt_at=None, last_error=None)
                .execution_options(synchronize_session=False)
            )
            return await self._reload(session, grant_ids)

    async def _overlapped(self, grant: Grant) -> bool:
        """Another live grant gives the same role to the same subject: removing it is not ours to do."""
        return grant.id in await self._overlapping([grant])

    async def _overlapping(self, grants: list[Grant]) -> set[int]:
        """Of ``grants``, those whose role another live grant gives the same subject (one query)."""
        roles = [g for g in grants if g.kind == "role"]
        if not roles:
            return set()
        async with transaction(self._sessions) as session:
            live = await session.execute(
                select(Grant.id, Grant.guild_id, Grant.subject_id, Grant.target_id).where(
                    Grant.subject_id.in_(sorted({g.subject_id for g in roles})),
                    Grant.kind == "role",
                    Grant.status.in_([GrantStatus.APPLYING, GrantStatus.ACTIVE]),
                )
            )
            holders: dict[tuple[int, int, int], set[int]] = {}
            for other_id, guild_id, subject_id, target_id in live:
                holders.setdefault((guild_id, subject_id, target_id), set()).add(other_id)
        return {g.id for g in roles if holders.get((g.guild_id, g.subject_id, g.target_id), set()) - {g.id}}

    async def _removal_failed(self, grant: Grant, exc: BaseException) -> None:
        why = describe_error(exc)
        now = self._clock.now()
        attempts = grant.attempts + 1
        log.warning(
            "grant removal failed; it stays due",
            extra={"grant_id": grant.id, "guild_id": grant.guild_id, "attempts": attempts, "error": why},
        )
        tell = attempts >= STUCK_AFTER_ATTEMPTS and grant.stuck_reported_at is None
        async with transaction(self._sessions) as session:
            await session.execute(
                update(Grant)
                .where(Grant.id == grant.id)
                .values(
                    attempts=attempts,
                    next_attempt_at=now + backoff(attempts),
                    claimed_until=None,
                    last_error=why,
                    **({"stuck_reported_at": now} if tell else {}),
                )
            )
            if tell:
                await self._record(
                    session,
                    grant,
                    Outcome.REMOVAL_STUCK,
                    rule=f"scope.{grant.scope_id}",
                    reason=f"Warden has failed {attempts} times to remove grant #{grant.id}; the access still "
                    "exists in Discord. Warden keeps retrying; a server admin should check its permissions "
                    "or remove it by hand.",
                    extra={"attempts": attempts, "error": why},
                )

    # ---- sweeps: run at start-up and periodically; idempotent ---------------------------------

    async def expire_due(self, limit: int = 200, drain_seconds: float = DRAIN_SECONDS) -> ExpirySweep:
        """End every grant past its expiry and retry every removal that is due.

        Takes batches of ``limit`` until nothing is due (or ``drain_seconds`` of work have passed;
        the next sweep goes on), so ten thousand grants ending at once are removed as fast as
        Discord's rate limits allow, not ``limit`` per sweep interval. Every role is removed before
        anyone is told: the holders' DMs (and card updates) follow the last removal of the sweep.
        """
        now = self._clock.now()
        counts: Counter[str] = Counter()
        ended: list[Grant] = []
        # Removals overlap (bounded) so a burst of expiries still ends within the 30-second promise;
        # discord.py waits out any per-route rate limit Discord signals.
        gate = asyncio.Semaphore(REMOVAL_CONCURRENCY)
        # Each removal claims its grant right before it and commits right after it, but the removals
        # in flight at one moment share those transactions (and the overlap query).
        expiring_claim: Batched[int, Grant | None] = Batched(lambda ids: self._claim_expiring(ids, now), None)
        retry_claim: Batched[int, Grant | None] = Batched(lambda ids: self._claim_retry(ids, now), None)
        finish: Batched[int, Grant | None] = Batched(self._finish, None)

        async def overlapping(grants: list[Grant]) -> dict[Grant, bool]:
            found = await self._overlapping(grants)
            return {g: g.id in found for g in grants}

        overlapped: Batched[Grant, bool] = Batched(overlapping, False)

        async def end(gid: int, first_time: bool) -> None:
            async with gate:
                grant = await (expiring_claim if first_time else retry_claim)(gid)
                if grant is None:
                    return  # another process claimed it
                counts["expired"] += first_time
                removed = await self._remove_claimed(
                    grant, tell=ended.append, overlapped=overlapped, finish=finish
                )
                counts["removed" if removed else "failed"] += 1

        started = time.monotonic()
        while True:
            expiring = await self._all(
                select(Grant.id)
                .where(Grant.expires_at <= now, _endable(now))
                .order_by(Grant.expires_at)
                .limit(limit)
            )
            retrying = await self._all(
                select(Grant.id)
                .where(
                    Grant.status == GrantStatus.REMOVING,
                    or_(Grant.next_attempt_at.is_(None), Grant.next_attempt_at <= now),
                    _lapsed(now),
                )
                .order_by(Grant.id)
                .limit(limit)
            )
            await asyncio.gather(*(end(g, True) for g in expiring), *(end(g, False) for g in retrying))
            full = len(expiring) == limit or len(retrying) == limit
            if not full or time.monotonic() - started > drain_seconds:
                break

        async def tell(grant: Grant) -> None:
            async with gate:
                await self._notifier.grant_ended(grant)

        await asyncio.gather(*(tell(g) for g in ended))
        return ExpirySweep(expired=counts["expired"], removed=counts["removed"], still_due=counts["failed"])

    async def remind_due(self, limit: int = 200) -> int:
        """DM holders once, the policy's lead time before their grant ends."""
        now = self._clock.now()
        lead_by_guild: dict[int, dt.timedelta] = {}
        rows = await self._all(
            select(Grant)
            .where(Grant.status == GrantStatus.ACTIVE, Grant.reminded_at.is_(None), Grant.expires_at > now)
            .order_by(Grant.expires_at)
            .limit(limit)
        )
        sent = 0
        for grant in rows:
            lead = lead_by_guild.get(grant.guild_id)
            if lead is None:
                gp = self._guilds.get(grant.guild_id)
                lead = gp.expiry_reminder if gp else dt.timedelta(minutes=15)
                lead_by_guild[grant.guild_id] = lead
            assert grant.expires_at is not None
            if grant.expires_at - lead > now:
                continue
            unreminded = (
                Grant.id == grant.id,
                Grant.reminded_at.is_(None),
                Grant.status == GrantStatus.ACTIVE,
            )
            async with transaction(self._sessions) as session:
                claimed = await claim(session, Grant, *unreminded, reminded_at=now)
            if claimed:
                sent += 1
                await self._notifier.grant_expiring(grant)
        return sent

    async def reapply_stale(self) -> int:
        """Grants whose apply was interrupted (the process died): finish it.

        Decided but never claimed: apply now (nothing existed, so the clock starts now). Claimed by
        an apply whose claim lapsed and not yet at its end: apply again under the clock recorded at
        the first attempt — adding a role or overwrite twice is harmless in Discord. Past its end it
        is the expiry sweep's, which removes it.
        """
        now = self._clock.now()
        stale = await self._all(
            select(Grant.id).where(
                Grant.status == GrantStatus.APPROVED, Grant.created_at <= now - self._claims.stale_approved
            )
        )
        for gid in stale:
            await self.apply(gid)
        interrupted = await self._all(
            select(Grant.id).where(Grant.status == GrantStatus.APPLYING, _lapsed(now), Grant.expires_at > now)
        )
        for gid in interrupted:
            async with transaction(self._sessions) as session:
                interrupted_apply = (Grant.id == gid, Grant.status == GrantStatus.APPLYING, _lapsed(now))
                if not await claim(
                    session, Grant, *interrupted_apply, claimed_until=now + self._claims.apply
                ):
                    continue  # another process took it over
                grant = await fresh(session, Grant, gid)
                assert grant is not None
                reason = (
                    await session.scalar(
                        select(AccessRequest.reason).where(AccessRequest.id == grant.request_id)
                    )
                    if grant.request_id
                    else None
                )
            await self._apply_claimed(grant, reason)
        return len(stale) + len(interrupted)

    async def get(self, grant_id: int) -> Grant | None:
        async with transaction(self._sessions) as session:
            return await session.get(Grant, grant_id)


class OpsLike(Protocol):
    async def prior_state(self, target: GrantTarget) -> PriorState: ...
    async def apply(self, target: GrantTarget, reason: str) -> None: ...
    async def remove(self, target: GrantTarget, reason: str) -> None: ...
    async def audit_entry_for(self, target: GrantTarget, reason: str) -> str | None: ...


class GrantNotifierLike(Protocol):
    async def deliver_token(self, grant: Grant, issued: IssuedToken) -> str | None:
        """DM the token once; None when delivered, else why not (secret-free)."""
        ...

    async def grant_applied(self, grant: Grant) -> None: ...
    async def grant_failed(self, grant: Grant) -> None: ...
    async def grant_ended(self, grant: Grant) -> None: ...
    async def grant_expiring(self, grant: Grant) -> None: ...
