"""Warden's promises, checked from the outside after a crash campaign or a soak.

The evidence is what Discord (the sandbox) recorded — its audit log, with the time of every role
change in the entry's snowflake and the grant number in Warden's audit-log reason — set against
what people approved (the request rows). The grant rows' own clocks are never trusted: they are
what a crash could have got wrong.

- **Nothing outlives its approval**: every grant's role is gone no later than the moment it first
  existed in Discord + the approved time (request and approved extensions) + 60 s.
- **Nothing applied twice**: Discord added each grant's role at most once.
- **No standing access removed**: Warden removed a role only after adding it for the same grant;
  what members held before the run they still hold.
- **Every grant ended**: nothing is left approved, applying or removing, and no role Warden added
  is still in place once its grant has ended.
- **No narrative lost**: every queued narrative was posted, and the message is in the channel.
- **The ledger verifies** (the caller runs ``warden audit verify`` or ``verify_chain``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import discord
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import AccessRequest, Grant, GrantStatus, NarrativeOutbox, RequestStatus
from sandbox.models import SGuild
from sandbox.server import SandboxDiscord

PROMISE = dt.timedelta(seconds=60)
MEMBER_ROLE_UPDATE = 25
_REASON = re.compile(r"^Warden grant #(\d+) ")
_ENDED = {GrantStatus.EXPIRED, GrantStatus.REVOKED, GrantStatus.FAILED}


@dataclass
class Change:
    at: dt.datetime
    grant_id: int | None  # None: not Warden's
    member_id: int
    role_id: int
    added: bool


@dataclass
class Findings:
    """What the checks saw: counts for the report and every violation, one sentence each."""

    grants: int = 0
    applied: int = 0
    removed: int = 0
    narratives: int = 0
    worst_late: dt.timedelta = dt.timedelta(0)  # the latest removal after the approved end
    violations: list[str] = field(default_factory=list)


def role_changes(sb: SandboxDiscord, guild: SGuild) -> list[Change]:
    """Every member role change in the guild's audit log, oldest first."""
    out: list[Change] = []
    for entry in reversed(sb.audit_log(guild)):
        if entry["action_type"] != MEMBER_ROLE_UPDATE:
            continue
        match = _REASON.match(entry.get("reason") or "")
        warden = int(entry["user_id"]) == sb.bot_user.id
        grant_id = int(match.group(1)) if match and warden else None
        at = discord.utils.snowflake_time(int(entry["id"]))
        for change in entry.get("changes") or []:
            for role in change.get("new_value") or []:
                out.append(
                    Change(at, grant_id, int(entry["target_id"]), int(role["id"]), change["key"] == "$add")
                )
    return out


def standing_roles(guild: SGuild) -> dict[int, set[int]]:
    """Who holds which role now (take it before the run: it is the standing access)."""
    return {m.id: {r.id for r in m.roles} for m in guild.members}


async def check(
    sb: SandboxDiscord,
    guilds: list[SGuild],
    sessions: async_sessionmaker[AsyncSession],
    standing: dict[int, dict[int, set[int]]],
    *,
    now: dt.datetime,
    promise: dt.timedelta = PROMISE,
) -> Findings:
    """Check every promise above against the sandbox and the database; ``now`` is the sandbox's time."""
    found = Findings()
    async with sessions() as session:
        grants = list((await session.scalars(select(Grant))).all())
        requests = list((await session.scalars(select(AccessRequest))).all())
        outbox = list((await session.scalars(select(NarrativeOutbox))).all())
    approved_for: dict[int, dt.timedelta] = defaultdict(dt.timedelta)
    by_request = {r.id: r for r in requests}
    for g in grants:
        req = by_request.get(g.request_id) if g.request_id else None
        if req is not None:
            approved_for[g.id] += dt.timedelta(seconds=req.duration_seconds)
    for r in requests:
        if r.extends_grant_id is not None and r.status == RequestStatus.APPROVED:
            approved_for[r.extends_grant_id] += dt.timedelta(seconds=r.duration_seconds)
    found.grants = len(grants)
    status = {g.id: GrantStatus(g.status) for g in grants}
    for g in grants:
        if status[g.id] not in _ENDED:
            found.violations.append(f"grant #{g.id} never ended: it is still {g.status}")
    for guild in guilds:
        changes = role_changes(sb, guild)
        held_by_grant: dict[int, Change] = {}
        adds: dict[int, int] = defaultdict(int)
        for c in changes:
            if c.grant_id is None:
                continue
            if c.added:
                adds[c.grant_id] += 1
                found.applied += 1
                if adds[c.grant_id] > 1:
                    found.violations.append(f"grant #{c.grant_id} was applied {adds[c.grant_id]} times")
                held_by_grant[c.grant_id] = c
                continue
            found.removed += 1
            start = held_by_grant.pop(c.grant_id, None)
            if start is None:
                found.violations.append(
                    f"Warden removed role {c.role_id} from member {c.member_id} (grant #{c.grant_id}) "
                    "without having added it: standing access taken away"
                )
                continue
            _late(found, c.grant_id, start.at, c.at, approved_for, promise)
        for gid, start in held_by_grant.items():
            if status.get(gid) in _ENDED:
                found.violations.append(f"grant #{gid} ended but its role is still in place in Discord")
            _late(found, gid, start.at, now, approved_for, promise)
        for member_id, roles in standing.get(guild.id, {}).items():
            member = next((m for m in guild.members if m.id == member_id), None)
            lost = roles - ({r.id for r in member.roles} if member else set())
            for role_id in sorted(lost):
                why = next(
                    (
                        f"; removed by user {e['user_id']}: {e.get('reason')!r}"
                        for e in sb.audit_log(guild)
                        if e["action_type"] == MEMBER_ROLE_UPDATE
                        and e["target_id"] == str(member_id)
                        and any(
                            c["key"] == "$remove" and any(r["id"] == str(role_id) for r in c["new_value"])
                            for c in e.get("changes") or []
                        )
                    ),
                    "",
                )
                name = member.name if member else member_id
                found.violations.append(f"member {name} lost standing role {role_id}{why}")
    for row in outbox:
        if row.posted_at is None:
            found.violations.append(f"narrative for ledger entry {row.entry_id} was never posted")
        elif row.message_id is not None and row.message_id not in sb.messages_by_id:
            found.violations.append(f"narrative for ledger entry {row.entry_id} is not in the channel")
        else:
            found.narratives += 1
    return found


def _late(
    found: Findings,
    grant_id: int,
    start: dt.datetime,
    end: dt.datetime,
    approved_for: dict[int, Any],
    promise: dt.timedelta,
) -> None:
    approved = approved_for.get(grant_id)
    if approved is None:
        found.violations.append(f"grant #{grant_id} was applied, but no approved request asked for it")
        return
    late = end - (start + approved)
    found.worst_late = max(found.worst_late, late)
    if late > promise:
        found.violations.append(
            f"grant #{grant_id} outlived its approved end by {late.total_seconds():.1f} s "
            f"(the promise is {promise.total_seconds():.0f} s)"
        )
