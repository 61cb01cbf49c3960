"""Pending requests over time: undecided ones expire at their deadline; approvers are reminded half-way.

Idempotent and safe with two processes: each request is claimed with a conditional UPDATE.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select, update

from bot.db.models import AccessRequest, RequestStatus
from bot.decisions import outcomes
from bot.services.base import Core, Service, rowcount, transaction


class PendingSweeps(Service):
    def __init__(self, core: Core, *, notifier: PendingNotifier) -> None:
        super().__init__(core)
        self._notifier = notifier

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
                claimed = await session.execute(
                    update(AccessRequest)
                    .where(AccessRequest.id == rid, AccessRequest.status == RequestStatus.PENDING)
                    .values(status=RequestStatus.EXPIRED, decided_at=now, decision_rule="guild.pending_ttl")
                )
                if rowcount(claimed) != 1:
                    continue  # another process got there first
                req = await session.get(AccessRequest, rid, populate_existing=True)
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


class PendingNotifier(Protocol):
    async def request_expired(self, req: AccessRequest) -> None: ...
    async def remind_approvers(self, req: AccessRequest) -> None: ...
