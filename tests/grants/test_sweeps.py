"""Sweeps against a real database: two bot processes sharing it act on each grant exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from bot.db.models import Grant, GrantStatus, LedgerEntry
from bot.db.session import create_engine, create_session_factory
from bot.discord_io.ops import PriorState
from bot.grants.service import GrantService
from bot.ledger import Signer, verify_chain
from tests.helpers import Told, example_core


class RecordingOps:
    def __init__(self) -> None:
        self.removed: list[int] = []
        self.applied: list[int] = []

    async def apply(self, target, reason):
        await asyncio.sleep(0.005)
        self.applied.append(target.subject_id)

    async def audit_entry_for(self, target, reason):
        return None

    async def prior_state(self, target):
        return PriorState()

    async def remove(self, target, reason):
        await asyncio.sleep(0.005)  # let the other process interleave
        self.removed.append(target.subject_id)


def service(factory, clock, signer, ops) -> GrantService:
    return GrantService(example_core(factory, clock, signer), ops=ops, notifier=Told())


async def seed_active(factory, clock, n: int, *, expires_in: dt.timedelta) -> None:
    now = clock.now()
    async with factory() as s, s.begin():
        for i in range(n):
            s.add(
                Grant(
                    guild_id=1,
                    scope_id="deploy",
                    subject_id=1000 + i,
                    kind="role",
                    target_id=5,
                    status=GrantStatus.ACTIVE,
                    duration_seconds=3600,
                    created_at=now - dt.timedelta(hours=1),
                    applied_at=now - dt.timedelta(hours=1),
                    expires_at=now + expires_in,
                )
            )


async def test_two_processes_remove_each_expired_grant_exactly_once(engine, db_url, clock):
    other = create_engine(db_url)  # a second process: its own engine and connections
    try:
        f1, f2 = create_session_factory(engine), create_session_factory(other)
        signer = Signer.generate()
        await seed_active(f1, clock, 25, expires_in=-dt.timedelta(seconds=1))
        ops = RecordingOps()
        a, b = service(f1, clock, signer, ops), service(f2, clock, signer, ops)
        ra, rb = await asyncio.gather(a.expire_due(), b.expire_due())
        assert sorted(ops.removed) == [1000 + i for i in range(25)]  # each once, none twice
        assert ra.expired + rb.expired == 25
        async with f1() as s:
            statuses = set((await s.scalars(select(Grant.status))).all())
            decisions = await s.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.outcome == "expired")
            )
            report = await verify_chain(s, signer.public_key)
        assert statuses == {"expired"} and decisions == 25
        assert report.ok, report.problems
        # Running again is a no-op.
        again = await a.expire_due()
        assert again.expired == 0 and len(ops.removed) == 25
    finally:
        await other.dispose()


async def test_reminders_are_sent_once_at_the_lead_time(session_factory, clock):
    signer = Signer.generate()
    await seed_active(session_factory, clock, 3, expires_in=dt.timedelta(minutes=20))
    sent: list[int] = []

    class Counting(Told):
        async def grant_expiring(self, grant):
            sent.append(grant.id)

    svc = service(session_factory, clock, signer, RecordingOps())
    svc._notifier = Counting()
    assert await svc.remind_due() == 0  # 20 minutes left, lead time 15
    clock.advance(dt.timedelta(minutes=6))
    # Two sweeps at once may share the work (on PostgreSQL they interleave): each reminder once.
    assert sum(await asyncio.gather(svc.remind_due(), svc.remind_due())) == 3
    assert sorted(sent) == [1, 2, 3]


async def test_interrupted_apply_is_completed_by_the_sweep(session_factory, clock):
    signer = Signer.generate()
    now = clock.now()
    async with session_factory() as s, s.begin():
        s.add(
            Grant(
                guild_id=1,
                scope_id="deploy",
                subject_id=7,
                kind="role",
                target_id=5,
                status=GrantStatus.APPROVED,
                duration_seconds=600,
                created_at=now,
            )
        )
    ops = RecordingOps()
    svc = service(session_factory, clock, signer, ops)
    assert await svc.reapply_stale() == 0  # still fresh: the live process may be applying it
    clock.advance(dt.timedelta(minutes=3))
    assert await svc.reapply_stale() == 1
    grant = await svc.get(1)
    assert ops.applied == [7] and grant.status == "active"
    assert grant.expires_at == clock.now() + dt.timedelta(minutes=10)  # the clock starts at apply time


async def test_a_burst_of_expiries_shares_transactions_and_keeps_an_overlapping_grant(
    engine, session_factory, clock
):
    """Bulk expiry (issue: 10,000 grants at the rate limit): the removals in flight share their claim
    and finish transactions instead of three each — and a role another live grant gives the same
    member is still not taken away."""
    signer = Signer.generate()
    await seed_active(session_factory, clock, 120, expires_in=-dt.timedelta(seconds=1))
    async with session_factory() as s, s.begin():  # member 1000 also holds the role through another scope
        s.add(
            Grant(
                guild_id=1,
                scope_id="oncall",
                subject_id=1000,
                kind="role",
                target_id=5,
                status=GrantStatus.ACTIVE,
                duration_seconds=7200,
                created_at=clock.now(),
                applied_at=clock.now(),
                expires_at=clock.now() + dt.timedelta(hours=1),
            )
        )
    ops = RecordingOps()
    commits: list[int] = []

    def count(conn: object) -> None:
        commits.append(1)

    sa_event.listen(engine.sync_engine, "commit", count)
    try:
        report = await service(session_factory, clock, signer, ops).expire_due()
    finally:
        sa_event.remove(engine.sync_engine, "commit", count)
    assert report.expired == 120 and report.removed == 120
    assert sorted(ops.removed) == [
        1000 + i for i in range(1, 120)
    ]  # 1000 still holds it through a live grant
    # One at a time it was 3 per grant (360); shared, fewer than one per grant however they interleave.
    assert len(commits) < 120, len(commits)
    async with session_factory() as s:
        assert (await verify_chain(s, signer.public_key)).ok
