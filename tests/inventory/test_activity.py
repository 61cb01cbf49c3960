"""ActivityTracker: members seen at once share one write, and a write never moves time back."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import event, select

from bot.db.models import MemberActivity
from bot.inventory.activity import ActivityTracker
from bot.inventory.service import InventoryService

G = 100


def tracker(session_factory, clock) -> ActivityTracker:
    return ActivityTracker(session_factory, clock, InventoryService(session_factory, clock))


async def seen(session_factory) -> dict[int, tuple[dt.datetime, str]]:
    async with session_factory() as s:
        rows = (await s.execute(select(MemberActivity))).scalars().all()
        return {r.user_id: (r.last_seen_at, r.source) for r in rows}


async def test_a_burst_of_members_is_one_transaction(session_factory, engine, clock) -> None:
    activity = tracker(session_factory, clock)
    await activity.member_seen(G, 1, "interaction")  # the first write is under way alone
    commits = 0

    def count(_conn) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine.sync_engine, "commit", count)
    try:
        await asyncio.gather(*(activity.member_seen(G, uid, "interaction") for uid in range(2, 202)))
    finally:
        event.remove(engine.sync_engine, "commit", count)
    assert commits <= 2  # 200 people's first clicks: not 200 transactions
    recorded = await seen(session_factory)
    assert set(recorded) == set(range(1, 202))
    assert all(at == clock.now() and source == "interaction" for at, source in recorded.values())


async def test_a_later_sighting_moves_forward_and_an_older_one_never_back(session_factory, clock) -> None:
    first = tracker(session_factory, clock)
    other = tracker(session_factory, clock)  # another process, with its own thinning
    await first.member_seen(G, 7, "message")
    clock.advance(dt.timedelta(minutes=5))
    later = clock.now()
    await first.member_seen(G, 7, "interaction")
    assert (await seen(session_factory))[7] == (later, "interaction")
    clock.advance(dt.timedelta(minutes=-3))  # a process whose sighting is older arrives late
    await other.member_seen(G, 7, "message")
    assert (await seen(session_factory))[7] == (later, "interaction")
