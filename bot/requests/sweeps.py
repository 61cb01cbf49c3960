"""Pending requests over time: undecided ones expire at their deadline; approvers are reminded half-way;
a card that was never posted (the process died between the commit and the post) is posted.

Idempotent and safe with two processes: each request is claimed with a conditional UPDATE.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy import select, update

from bot.db.models import AccessRequest, RequestStatus
from bot.decisions import outcomes
from bot.policy import Scope
from bot.services.base import Core, Service, rowcount, transaction

# A card is posted right after its request commits; one still missing this long after was lost.
CARD_GRACE = dt.timedelta(seconds=30)
# While a sweep posts a lost card, the card's channel holds this (no channel has id 0).
_POSTING = 0


class PendingSweeps(Service):
    def __init__(
        self, core: Core, *, notifier: PendingNotifier, card_grace: dt.timedelta = CARD_GRACE
    ) -> None:
        super().__init__(core)
        self._notifier = notifier
        self._card_grace = card_grace

    async def post_lost_cards(self, limit: int = 50) -> int:
        """Post the card of every pending request whose card never reached Discord, once.

        The card is posted after the request commits, so a process killed in between leaves a
        request nobody can vote on. Claimed (the card's channel set to a marker) so two processes
        do not both post it; if the post fails the claim is released and the next sweep tries again.
        """
        now = self._clock.now()
        lost = await self._all(
            select(AccessRequest.id)
            .where(
                AccessRequest.status == RequestStatus.PENDING,
                AccessRequest.card_message_id.is_(None),
                AccessRequest.card_channel_id.is_(None),
                AccessRequest.created_at <= now - self._card_grace,
                AccessRequest.pending_until > now,
            )
            .order_by(AccessRequest.id)
            .limit(limit)
        )
        posted = 0
        for rid in lost:
            async with transaction(self._sessions) as session:
                claimed = await session.execute(
                    update(AccessRequest)
                    .where(AccessRequest.id == rid, AccessRequest.card_channel_id.is_(None))
                    .values(card_channel_id=_POSTING)
                )
                if rowcount(claimed) != 1:
                    continue  # another process posts it
                req = await session.get(AccessRequest, rid, populate_existing=True)
                assert req is not None
            scope = self._guilds.scope(req.guild_id, req.scope_id)
            if scope is not None:
                await self._notifier.request_created(req, scope)
            if req.card_message_id is not None:
                posted += 1
                continue
            async with transaction(self._sessions) as session:  # not posted: the next sweep tries again
                await session.execute(
                    update(AccessRequest)
                    .where(AccessRequest.id == rid, AccessRequest.card_channel_id == _POSTING)
                    .values(card_channel_id=None)
                )
        return posted

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
    async def request_created(self, req: AccessRequest, scope: Scope) -> None: ...
    async def request_expired(self, req: AccessRequest) -> None: ...
    async def remind_approvers(self, req: AccessRequest) -> None: ...
