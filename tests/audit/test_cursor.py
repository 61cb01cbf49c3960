"""Catch-up bookkeeping on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from bot.audit.cursor import (
    RETENTION,
    CursorState,
    advance_cursor,
    catch_up_plan,
    claim_entries,
    gap_since,
    load_cursor,
    processed_ids,
    prune_processed,
)
from tests.helpers import GUILD, T0


def e(i: int) -> dict:
    return {"id": str(i), "action_type": 31}


def test_plan_orders_dedupes_and_skips_processed_and_old():
    cursor = CursorState(GUILD, 10, T0)
    plan = catch_up_plan(cursor, [e(14), e(12), e(9), e(12), e(13), {"id": "x"}, "junk"], processed={13})
    assert [p["id"] for p in plan.entries] == ["12", "14"]
    assert plan.next_after == 14 and not plan.baseline
    assert catch_up_plan(cursor, []).next_after is None


def test_first_run_is_a_baseline():
    plan = catch_up_plan(None, [e(5), e(7)])
    assert plan.baseline and plan.entries == () and plan.next_after == 7
    assert catch_up_plan(None, []).baseline


def test_gap_detection():
    cursor = CursorState(GUILD, 1, T0)
    assert gap_since(cursor, T0 + RETENTION) is None
    assert gap_since(cursor, T0 + RETENTION + dt.timedelta(days=3)) == RETENTION + dt.timedelta(days=3)
    assert gap_since(None, T0) is None


async def test_cursor_only_moves_forward(session_factory):
    async with session_factory() as s, s.begin():
        assert await load_cursor(s, GUILD) is None
        await advance_cursor(s, GUILD, 50, T0)
    async with session_factory() as s, s.begin():
        await advance_cursor(s, GUILD, 40, T0 + dt.timedelta(minutes=1))
    async with session_factory() as s:
        cur = await load_cursor(s, GUILD)
    assert cur == CursorState(GUILD, 50, T0 + dt.timedelta(minutes=1))


async def test_an_entry_is_claimed_once(session_factory):
    async with session_factory() as s, s.begin():
        assert await claim_entries(s, GUILD, [77], T0) == {77}
        assert await claim_entries(s, GUILD, [77], T0) == set()
        assert await claim_entries(s, GUILD + 1, [77], T0) == {77}
    async with session_factory() as s, s.begin():
        assert await claim_entries(s, GUILD, [77], T0) == set()
        assert await processed_ids(s, GUILD, [76, 77]) == {77}
    async with session_factory() as s, s.begin():
        assert await prune_processed(s, T0 + dt.timedelta(days=1)) == 2
        assert await processed_ids(s, GUILD, [77]) == set()


async def test_a_page_is_claimed_at_once_and_skips_what_was_taken(session_factory):
    async with session_factory() as s, s.begin():
        assert await claim_entries(s, GUILD, [2], T0) == {2}
    async with session_factory() as s, s.begin():
        rows = await claim_entries(s, GUILD, [1, 2, 3, 3], T0)
    assert sorted(rows) == [1, 3]
    async with session_factory() as s:
        assert await processed_ids(s, GUILD, [1, 2, 3]) == {1, 2, 3}
