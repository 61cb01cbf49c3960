"""Facts about the database, read on every scrape: the custom collector behind the gauges.

Each scrape runs a handful of COUNT queries under a short timeout. When the database does not
answer in time the gauges are left out and ``warden_database_up`` is 0, so ``/metrics`` never
hangs on a down database and ``/readyz`` reports it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AccessRequest, Grant, GrantStatus, NarrativeOutbox, RequestStatus

# The product promises removal within 30 s of expiry: older than this, a removal is overdue.
REMOVAL_GRACE = dt.timedelta(seconds=30)
QUERY_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Facts:
    active_grants: int
    removals_due: int
    removals_overdue: int
    oldest_overdue_seconds: float
    pending_requests: int
    outbox_backlog: int
    oldest_outbox_seconds: float


def _age(now: dt.datetime, since: dt.datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:  # SQLite returns aggregates without the column's type
        since = since.replace(tzinfo=dt.UTC)
    return max((now - since).total_seconds(), 0.0)


async def read_facts(session: AsyncSession, now: dt.datetime) -> Facts:
    removing = Grant.status == GrantStatus.REMOVING
    expired_active = Grant.status.in_([GrantStatus.ACTIVE, GrantStatus.APPLYING]) & (Grant.expires_at <= now)
    # When the removal fell due: a revocation at ended_at, an expiry at expires_at.
    due_since = case((removing, func.coalesce(Grant.ended_at, Grant.expires_at)), else_=Grant.expires_at)
    overdue_before = now - REMOVAL_GRACE
    active = await session.scalar(select(func.count()).where(Grant.status == GrantStatus.ACTIVE))
    due, overdue, oldest = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(due_since <= overdue_before),
                func.min(due_since),
            ).where(or_(removing, expired_active))
        )
    ).one()
    pending = await session.scalar(select(func.count()).where(AccessRequest.status == RequestStatus.PENDING))
    backlog, oldest_outbox = (
        await session.execute(
            select(func.count(), func.min(NarrativeOutbox.created_at)).where(
                NarrativeOutbox.posted_at.is_(None)
            )
        )
    ).one()
    oldest_age = _age(now, _as_datetime(oldest))
    return Facts(
        active_grants=int(active or 0),
        removals_due=int(due or 0),
        removals_overdue=int(overdue or 0),
        oldest_overdue_seconds=oldest_age if oldest_age > REMOVAL_GRACE.total_seconds() else 0.0,
        pending_requests=int(pending or 0),
        outbox_backlog=int(backlog or 0),
        oldest_outbox_seconds=_age(now, _as_datetime(oldest_outbox)),
    )


def _as_datetime(value: object) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))  # SQLite: MIN() over a DATETIME comes back as text


class DatabaseFacts(Collector):
    """``refresh()`` (async, before each scrape) reads the facts; ``collect()`` reports them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        timeout: float = QUERY_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._timeout = timeout
        self._facts: Facts | None = None
        self._lock = asyncio.Lock()

    @property
    def timeout(self) -> float:
        return self._timeout

    async def ping(self) -> bool:
        """True if the database answers ``SELECT 1`` within the timeout."""

        async def _ping() -> None:
            async with self._sessions() as session:
                await session.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(_ping(), self._timeout)
        except Exception:
            return False
        return True

    async def refresh(self) -> Facts | None:
        async def _read() -> Facts:
            async with self._sessions() as session:
                return await read_facts(session, self._clock.now())

        async with self._lock:
            try:
                self._facts = await asyncio.wait_for(_read(), self._timeout)
            except Exception:
                self._facts = None
            return self._facts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        facts = self._facts
        yield GaugeMetricFamily(
            "warden_database_up",
            "1 if the database answered the last scrape's queries in time",
            value=0 if facts is None else 1,
        )
        if facts is None:
            return
        for name, doc, value in (
            ("warden_active_grants", "Grants that exist in Discord now", facts.active_grants),
            (
                "warden_removals_due",
                "Grants whose removal from Discord is due (expired or revoked, not yet removed)",
                facts.removals_due,
            ),
            (
                "warden_removals_overdue",
                "Removals due for longer than the 30 s Warden promises",
                facts.removals_overdue,
            ),
            (
                "warden_removal_oldest_overdue_seconds",
                "How long the oldest overdue removal has been due (0 when none is overdue)",
                facts.oldest_overdue_seconds,
            ),
            ("warden_pending_requests", "Access requests waiting for approvers", facts.pending_requests),
            (
                "warden_narrative_outbox_backlog",
                "Narratives not yet posted to a governance channel",
                facts.outbox_backlog,
            ),
            (
                "warden_narrative_outbox_oldest_seconds",
                "Age of the oldest narrative not yet posted (0 when none)",
                facts.oldest_outbox_seconds,
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
