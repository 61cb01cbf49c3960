"""The checks a request must pass before anything is written, and the one way a request row is made."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Protocol

import discord
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    AccessRequest,
    Grant,
    GrantStatus,
    Identity,
    IdentityKind,
    RequestKind,
    RequestStatus,
)
from bot.db.session import fresh
from bot.durations import DurationError, format_duration, parse_duration
from bot.durations import discord_ts as ts
from bot.escape import typed
from bot.grantability import describe_refs, is_member_of, may_request
from bot.policy import GuildPolicy, Scope
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound, TooSoon

# The user's reason goes into Discord's audit-log reason (512 characters) together with
# the grant and request ids; this leaves room for them so the reason is never cut.
MAX_REASON_LENGTH = 400


def length_of(scope: Scope, text: str | None) -> dt.timedelta:
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


def reason_for(scope: Scope, text: str | None) -> str:
    reason = typed(text)
    if scope.reason_required and not reason:
        raise BadInput(f"`{scope.id}` needs a reason. Say briefly why you need it and ask again.")
    if len(reason) > MAX_REASON_LENGTH:
        raise BadInput(
            f"Your reason is {len(reason)} characters long; the limit is {MAX_REASON_LENGTH} so that it "
            "fits, with the grant id, in Discord's 512-character audit-log reason. Shorten it and ask again."
        )
    return reason


def check_subject(scope: Scope, subject: discord.Member) -> None:
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


def check_subject_may_receive(scope: Scope, requester: discord.Member, subject: discord.Member) -> None:
    """A member named with `for:` must be someone who could ask for the scope themselves."""
    if subject.bot or subject.id == requester.id or may_request(scope, subject):
        return
    raise NotAllowed(
        f"{subject.mention} may not receive `{scope.id}`: only {describe_refs(subject.guild, scope.requesters)} "
        "can hold it. Nothing was requested; ask a server admin if they need it."
    )


def is_admin(member: discord.Member, gp: GuildPolicy) -> bool:
    """A server admin for Warden: Manage Server in Discord, or named in the policy's `admins`."""
    named = getattr(gp, "admins", ()) or ()
    return member.guild_permissions.manage_guild or any(is_member_of(member, ref) for ref in named)


async def check_bot_sponsor(
    session: AsyncSession, gp: GuildPolicy, requester: discord.Member, bot: discord.Member
) -> None:
    """Access for a bot is asked for by a server admin or by the bot's recorded owner, nobody else."""
    if is_admin(requester, gp):
        return
    owner = await session.scalar(
        select(Identity.owner_id).where(
            Identity.guild_id == requester.guild.id,
            Identity.kind == IdentityKind.BOT,
            Identity.external_id == str(bot.id),
            Identity.gone_at.is_(None),
        )
    )
    if owner == requester.id:
        return
    raise NotAllowed(
        f"Only a server admin (Manage Server) or the owner Warden has on record for {bot.mention} may ask "
        "for access for it, and you are neither. Ask an admin, or have an admin record you as its owner."
    )


def check_not_standing(scope: Scope, subject: discord.Member, role_id: int) -> None:
    """A role the subject already holds outside Warden is not Warden's to grant (or ever to remove)."""
    role = subject.get_role(role_id) if scope.kind == "role" else None
    if role is not None:
        raise AlreadyDecided(
            f"{subject.mention} already holds the role {role.name} outside Warden (standing access), so `{scope.id}` "
            "has nothing to add. Nothing was requested."
        )


def check_recipient(scope: Scope, requester: discord.Member, subject: discord.Member, target_id: int) -> None:
    """Everything about who would receive the access, for every way access is asked for (a request,
    a request ``for:`` someone, break-glass): the right kind of subject, one who could hold the
    scope, and no role they already hold outside Warden."""
    check_subject(scope, subject)
    check_subject_may_receive(scope, requester, subject)
    check_not_standing(scope, subject, target_id)


@contextlib.asynccontextmanager
async def one_at_a_time() -> AsyncIterator[None]:
    """Turn a lost race into the refusal the check would have given (the database has the last word).

    The checks before an insert (one pending request per scope and subject, one pending extension
    per grant) are backed by unique indexes; two concurrent requests that both passed the checks
    meet the index, and the loser is told what the check says, with nothing written.
    """
    try:
        yield
    except IntegrityError:
        raise AlreadyDecided(
            "An identical request was made at the same moment and is already waiting for approval; "
            "nothing more was written. Check `/jit mine`."
        ) from None


async def serialise_requester(session: AsyncSession, guild_id: int, requester_id: int) -> None:
    """PostgreSQL: one request at a time per member, so the pending limit and cooldown hold under races.

    A transaction-scoped advisory lock, released at commit. SQLite needs none: it writes one
    transaction at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = (guild_id * 1_000_003 + requester_id) % (2**63 - 1)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def abuse_guard(
    session: AsyncSession, gp: GuildPolicy, member: discord.Member, now: dt.datetime
) -> None:
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


async def no_duplicate(session: AsyncSession, guild_id: int, scope: Scope, subject: discord.Member) -> None:
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
            Grant.status.in_([GrantStatus.ACTIVE, GrantStatus.APPLYING, GrantStatus.APPROVED]),
        )
    )
    if active is not None:
        until = f" until {ts(active.expires_at)}" if active.expires_at else ""
        raise AlreadyDecided(
            f"{subject.mention} already holds `{scope.id}` (grant #{active.id}){until}. "
            f"To keep it longer use `/jit extend grant:{active.id}`."
        )


class _Guild(Protocol):
    @property
    def id(self) -> int: ...


class Requester(Protocol):
    """Who asks: a ``discord.Member``, or (a change adopted from the audit log) its actor by id."""

    @property
    def id(self) -> int: ...
    @property
    def guild(self) -> _Guild: ...


async def open_request(
    session: AsyncSession,
    kind: RequestKind,
    scope: Scope,
    requester: Requester,
    subject: tuple[int, bool],
    length: dt.timedelta,
    reason: str,
    now: dt.datetime,
    pending_until: dt.datetime,
    *,
    approvals_required: int,
    extends_grant_id: int | None = None,
) -> AccessRequest:
    """Add a pending request and flush it, so it has its id for the ledger."""
    req = AccessRequest(
        guild_id=requester.guild.id,
        scope_id=scope.id,
        kind=kind,
        requester_id=requester.id,
        subject_id=subject[0],
        subject_is_bot=subject[1],
        duration_seconds=int(length.total_seconds()),
        reason=reason,
        status=RequestStatus.PENDING,
        approvals_required=approvals_required,
        extends_grant_id=extends_grant_id,
        created_at=now,
        pending_until=pending_until,
        votes=[],
    )
    session.add(req)
    await session.flush()
    return req


async def locked_request(session: AsyncSession, guild_id: int, request_id: int) -> AccessRequest:
    """The request, locked for this transaction; NotFound if it is not in this guild."""
    req = await fresh(session, AccessRequest, request_id, lock=True)
    if req is None or req.guild_id != guild_id:
        raise NotFound(f"There is no request #{request_id} in this server. Check the id with `/jit mine`.")
    return req
