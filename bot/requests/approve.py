"""Approving a request: the one place a grant row is created (or an extended grant lengthened).

Called inside the caller's transaction, with the request locked, by auto-approval,
break-glass and the vote that completes a quorum.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    AccessRequest,
    AccessToken,
    Grant,
    GrantStatus,
    RequestKind,
    RequestStatus,
    TokenStatus,
)
from bot.decisions import outcomes
from bot.decisions.service import DecisionService, Outcome
from bot.durations import format_duration
from bot.grantability import GrantPlan
from bot.policy import Scope


class Approval(NamedTuple):
    """Why a request is approved: the outcome, the rule that decided, one sentence, and who."""

    outcome: Outcome
    rule: str
    reason: str
    actor_id: int | None = None


async def approve(
    session: AsyncSession,
    decisions: DecisionService,
    req: AccessRequest,
    scope: Scope,
    plan: GrantPlan,
    now: dt.datetime,
    why: Approval,
) -> Grant | None:
    """Mark a locked, pending request approved and create its grant (or lengthen one)."""
    outcome, rule, reason, actor_id = why
    req.status = RequestStatus.APPROVED
    req.decided_at = now
    req.decided_by = actor_id
    req.decision_rule = rule
    if req.kind == RequestKind.EXTENSION and req.extends_grant_id is not None:
        grant = await session.get(Grant, req.extends_grant_id, with_for_update=True)
        if grant is None or grant.status != GrantStatus.ACTIVE or grant.expires_at is None:
            req.status = RequestStatus.CANCELLED
            req.decision_note = "the grant it extends has already ended"
            return None
        # Checked again under the grant's lock: whatever was approved before, the whole grant never
        # lasts longer than the scope's maximum.
        started = grant.applied_at or grant.created_at
        if grant.expires_at + dt.timedelta(seconds=req.duration_seconds) - started > scope.max_duration:
            req.status = RequestStatus.CANCELLED
            req.decision_note = (
                f"it would take the grant past the scope's maximum of {format_duration(scope.max_duration)}"
            )
            return None
        grant.expires_at = grant.expires_at + dt.timedelta(seconds=req.duration_seconds)
        grant.duration_seconds += req.duration_seconds
        grant.reminded_at = None
        if grant.kind == "token":  # its live token keeps ending with it (never past it: same row lock)
            await session.execute(
                update(AccessToken)
                .where(AccessToken.grant_id == grant.id, AccessToken.status == TokenStatus.ACTIVE)
                .values(expires_at=grant.expires_at)
            )
        await decisions.record(
            session,
            outcomes.extended(
                req,
                scope,
                grant,
                rule=rule,
                reason=reason + f" Grant #{grant.id} now ends {grant.expires_at.isoformat()}.",
                actor_id=actor_id,
            ),
        )
        return grant
    grant = Grant(
        guild_id=req.guild_id,
        scope_id=scope.id,
        request_id=req.id,
        subject_id=req.subject_id,
        subject_is_bot=req.subject_is_bot,
        kind=plan.kind,
        target_id=plan.target_id,
        allow_bits=plan.allow_bits,
        deny_bits=plan.deny_bits,
        status=GrantStatus.APPROVED,
        breakglass=req.kind == RequestKind.BREAKGLASS,
        duration_seconds=req.duration_seconds,
        created_at=now,
    )
    session.add(grant)
    await session.flush()
    await decisions.record(
        session,
        outcomes.granted(req, scope, grant, outcome=outcome, rule=rule, reason=reason, actor_id=actor_id),
    )
    return grant
