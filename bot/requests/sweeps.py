"""Pending requests over time: undecided ones expire at their deadline; approvers are reminded half-way;
a card that was never posted (the process died between the commit and the post) is posted.

Idempotent and safe with two processes: each request is claimed with a conditional UPDATE.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy import select

from bot.db.models import AccessRequest, RequestStatus
from bot.db.session import fresh
from bot.decisions import outcomes
from bot.policy import Scope
from bot.services.base import CARD_GRACE, Core, Service, claim, transaction


class PendingSweeps(Service):
    def __init__(
        self, core: Core, *, notifier: PendingNotifier, card_grace: dt.timedelta = CARD_GRACE
    ) -> None:
        super().__init__(core)
        self._notifier = notifier
        self._card_grace = card_grace

    async def post_lost_cards(self, limit: int = 50) -> int:
        """Post the card of every pending request whose card never reached Discord, once (a request
        nobody can vote on otherwise; see ``Service._post_lost_cards``)."""
        pending = AccessRequest.status == RequestStatus.PENDING
        return await self._post_lost_cards(
            AccessRequest,
            pending,
            AccessRequest.pending_until,
            self._post_card,
            grace=self._card_grace,
            limit=limit,
        )

    async def _post_card(self, req: AccessRequest) -> None:
        scope = self._guilds.scope(req.guild_id, req.scope_id)
        if scope is not None:
            await self._notifier.post_request_card(req, scope)

    async def expire_pending(self, limit: int = 100) -> list[AccessRequest]:
        """Requests nobody decided within the pending TTL become expired, each exactly once."""
        now = self._clock.now()
        expired: list[AccessRequest] = []
        due = await self._all(
            select(AccessRequest.id)
            .where(AccessRequest.status == RequestStatus.PENDING, AccessRequest.pending_until <= now)
            .order_by(AccessRequest.pending_until)
            .limit(limit)
        )
        for rid in due:
            async with transaction(self._sessions) as session:
                pending = (AccessRequest.id == rid, AccessRequest.status == RequestStatus.PENDING)
                expired_now = {
                    "status": RequestStatus.EXPIRED,
                    "decided_at": now,
                    "decision_rule": "guild.pending_ttl",
                }
                if not await claim(session, AccessRequest, *pending, **expired_now):
                    continue  # another process got there first
                req = await fresh(session, AccessRequest, rid)
                assert req is not None
                await self._decisions.record(session, outcomes.request_expired(req))
            expired.append(req)
            await self._notifier.request_expired(req)
        return expired

    async def remind_approvers(self, limit: int = 100) -> list[AccessRequest]:
        """Half-way through the pending TTL, remind approvers once."""
        now = self._clock.now()
        reminded: list[AccessRequest] = []
        rows = await self._all(
            select(AccessRequest)
            .where(
                AccessRequest.status == RequestStatus.PENDING,
                AccessRequest.approvers_reminded_at.is_(None),
                AccessRequest.pending_until > now,
            )
            .order_by(AccessRequest.id)
            .limit(limit * 4)
        )
        for req in rows:
            if req.created_at + (req.pending_until - req.created_at) / 2 > now:
                continue
            unreminded = (AccessRequest.id == req.id, AccessRequest.approvers_reminded_at.is_(None))
            async with transaction(self._sessions) as session:
                claimed = await claim(session, AccessRequest, *unreminded, approvers_reminded_at=now)
            if claimed:
                reminded.append(req)
                await self._notifier.remind_approvers(req)
            if len(reminded) >= limit:
                break
        return reminded


class PendingNotifier(Protocol):
    async def post_request_card(self, req: AccessRequest, scope: Scope) -> None: ...
    async def request_expired(self, req: AccessRequest) -> None: ...
    async def remind_approvers(self, req: AccessRequest) -> None: ...
