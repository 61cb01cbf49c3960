"""A JIT-managed role an ``approve`` rule reverted, put before approvers on the usual request card.

A JIT-managed role given by hand (rule ``jit-role-by-hand`` with ``outcome = "approve"``) is
adopted as a pending request for the scope that grants the role: the member is the subject,
whoever gave the role is the requester, and approvers decide through the same card and buttons
as any request. Approving creates a grant like any other, so the role comes back through Warden,
for the scope's default duration, and ends on time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit.decision import AuditDecision
from bot.audit.ports import GuildFacts, RecordDecision
from bot.db.models import AccessRequest, RequestKind, RequestStatus
from bot.decisions import outcomes
from bot.durations import format_duration
from bot.policy import Scope
from bot.requests.rules import open_request
from bot.services.base import Core, Service

log = logging.getLogger(__name__)

PostCard = Callable[[AccessRequest, Scope], Awaitable[None]]


@dataclass(frozen=True)
class _Id:
    id: int


@dataclass(frozen=True)
class _Actor:
    """The account that made the change, as the request's requester."""

    id: int
    guild: _Id


class RequestAdopter(Service):
    def __init__(self, core: Core, *, facts: GuildFacts, post_card: PostCard) -> None:
        super().__init__(core)
        self._facts = facts
        self._post_card = post_card
        self._to_post: list[tuple[AccessRequest, Scope]] = []

    async def adopt(
        self, session: AsyncSession, decision: AuditDecision, record: RecordDecision
    ) -> int | None:
        """Adopt a JIT-managed role given by hand as a pending request and record ``decision`` naming
        it (its ledger entry id); None when the decision is not one to adopt (nothing recorded)."""
        proof = decision.proof
        member_id, scope_ids = proof.get("member_id"), proof.get("scopes") or []
        gp = self._guilds.get(decision.guild_id)
        scope = self._guilds.scope(decision.guild_id, scope_ids[0]) if scope_ids else None
        if not isinstance(member_id, int) or scope is None or gp is None or decision.actor_id is None:
            return None
        waiting = await session.scalar(
            select(AccessRequest.id).where(
                AccessRequest.guild_id == decision.guild_id,
                AccessRequest.scope_id == scope.id,
                AccessRequest.subject_id == member_id,
                AccessRequest.status == RequestStatus.PENDING,
                AccessRequest.kind != RequestKind.EXTENSION,
            )
        )
        if waiting is not None:
            log.info(
                "request #%s already asks for %s for this member; not adopted twice",
                waiting,
                scope.id,
                extra={"guild_id": decision.guild_id},
            )
            return await record(session, replace(decision, proof={**proof, "adopted_request_id": waiting}))
        now = self._clock.now()
        entry = proof.get("audit_log_entry", "state comparison")
        reason = f"Adopted from audit-log entry {entry}: the role was given by hand (rule {decision.rule})."
        req = await open_request(
            session,
            RequestKind.NEW,
            scope,
            _Actor(decision.actor_id, _Id(decision.guild_id)),
            (member_id, bool(self._facts.is_bot(decision.guild_id, member_id))),
            scope.default_duration,
            reason,
            now,
            now + gp.pending_ttl,
            approvals_required=scope.approvals_required,
        )
        ledger_id = await record(session, replace(decision, proof={**proof, "adopted_request_id": req.id}))
        roles = sorted(self._facts.member_role_ids(decision.guild_id, decision.actor_id) or ())
        said = (
            f"<@{decision.actor_id}> gave <@{member_id}> a role of {scope.id} by hand; Warden took it back "
            f"and asks approvers whether to grant it for {format_duration(scope.default_duration)}."
        )
        await self._decisions.record(
            session, outcomes.requested(req, scope, reason=said, requester_roles=roles)
        )
        self._to_post.append((req, scope))
        return ledger_id

    async def notify(self, committed: bool) -> None:
        """After the transaction: post the approval cards of the requests adopted (if it committed)."""
        posts, self._to_post = self._to_post, []
        for req, scope in posts if committed else ():
            await self._post_card(req, scope)
