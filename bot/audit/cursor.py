"""Catch-up bookkeeping: where each guild's audit log was read up to, and what was decided.

Two records keep "nothing missed, nothing twice" true across restarts, resumes and
two processes:

- ``audit_cursors``: every entry up to ``last_entry_id`` has been processed. Only a
  completed catch-up (or a live entry while the listener is in sync) moves it, and
  only forward.
- ``audit_processed``: one row per entry decided, unique per (guild, entry). A live
  event and a catch-up page that carry the same entry race for that row; the loser
  skips it.

Discord keeps audit-log entries for 45 days: when the cursor was last confirmed
longer ago than that, entries may be gone and :func:`gap_since` says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit.events import snowflake
from bot.db.models import AuditCursor, AuditProcessed

#: How long Discord keeps audit-log entries.
RETENTION = dt.timedelta(days=45)


@dataclass(frozen=True)
class CursorState:
    guild_id: int
    last_entry_id: int
    synced_at: dt.datetime


@dataclass(frozen=True)
class CatchUpPlan:
    """One fetched page, sorted out.

    ``entries``: the entries to process, oldest first, each once (none at or below the
    cursor, none already processed). ``next_after``: fetch the next page after this id
    (None: the page was empty, catch-up is done). ``baseline``: the guild has no cursor
    yet; Warden starts watching from the newest entry and judges none of the history
    (start-up state comparison covers drift that already exists).
    """

    entries: tuple[Mapping[str, Any], ...]
    next_after: int | None
    baseline: bool = False


def catch_up_plan(
    cursor: CursorState | None,
    entries: Iterable[Any],
    *,
    processed: Container[int] = (),
) -> CatchUpPlan:
    by_id: dict[int, Mapping[str, Any]] = {}
    for entry in entries:
        eid = snowflake(entry.get("id")) if isinstance(entry, Mapping) else None
        if eid is not None:
            by_id.setdefault(eid, entry)
    if not by_id:
        return CatchUpPlan((), None, baseline=cursor is None)
    newest = max(by_id)
    if cursor is None:
        return CatchUpPlan((), newest, baseline=True)
    fresh = sorted(eid for eid in by_id if eid > cursor.last_entry_id and eid not in processed)
    return CatchUpPlan(tuple(by_id[eid] for eid in fresh), newest)


def gap_since(cursor: CursorState | None, now: dt.datetime) -> dt.timedelta | None:
    """How long the audit log went unread beyond Discord's retention, or None if no gap."""
    if cursor is None:
        return None
    unread = now - cursor.synced_at
    return unread if unread > RETENTION else None


async def load_cursor(session: AsyncSession, guild_id: int) -> CursorState | None:
    row = await session.get(AuditCursor, guild_id)
    return None if row is None else CursorState(row.guild_id, row.last_entry_id, row.synced_at)


async def advance_cursor(
    session: AsyncSession, guild_id: int, entry_id: int | None, synced_at: dt.datetime
) -> None:
    """Move the cursor forward to ``entry_id`` (never back) and note when it was confirmed."""
    row = await session.get(AuditCursor, guild_id, with_for_update=True)
    if row is None:
        session.add(AuditCursor(guild_id=guild_id, last_entry_id=entry_id or 0, synced_at=synced_at))
    else:
        if entry_id is not None and entry_id > row.last_entry_id:
            row.last_entry_id = entry_id
        row.synced_at = max(row.synced_at, synced_at)
    await session.flush()


_TABLE = cast(Table, AuditProcessed.__table__)


async def claim_entries(
    session: AsyncSession, guild_id: int, entry_ids: Iterable[int], now: dt.datetime
) -> set[int]:
    """Mark entries processed in this transaction; returns those this call claimed.

    One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for a whole batch: an entry already
    claimed (by a catch-up, a live event or another process — PostgreSQL makes a concurrent
    claimer wait for the first to commit) is simply not returned, and is skipped.
    """
    wanted = list(dict.fromkeys(entry_ids))
    if not wanted:
        return set()
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    stmt = (
        insert(_TABLE)
        .on_conflict_do_nothing(index_elements=["guild_id", "entry_id"])
        .returning(_TABLE.c.entry_id)
    )
    rows = [{"guild_id": guild_id, "entry_id": eid, "processed_at": now, "attempts": 0} for eid in wanted]
    # An executemany: SQLAlchemy sends it as few multi-row statements and caches the compiled form.
    return set((await session.execute(stmt, rows)).scalars())


@dataclass(frozen=True)
class ClaimDone:
    """What a claimed entry's row records once decided: its ledger entry and any revert pending
    (``None`` ledger entry or rule: keep the row's)."""

    guild_id: int
    entry_id: int
    ledger_entry_id: int | None
    pending_actions: list[dict[str, Any]] | None = None
    rule: str | None = None


_COMPLETE = (
    update(_TABLE)
    .where(_TABLE.c.guild_id == bindparam("b_guild"), _TABLE.c.entry_id == bindparam("b_entry"))
    .values(
        # None leaves what is there: a revert's outcome updates only what is still pending.
        ledger_entry_id=func.coalesce(bindparam("b_ledger", type_=Integer), _TABLE.c.ledger_entry_id),
        pending_actions=bindparam("b_pending", type_=_TABLE.c.pending_actions.type),
        rule=func.coalesce(bindparam("b_rule", type_=String), _TABLE.c.rule),
    )
)


async def complete_claims(session: AsyncSession, done: Iterable[ClaimDone]) -> None:
    """Write every decided entry's row in one executemany (not one UPDATE per entry)."""
    params = [
        {
            "b_guild": d.guild_id,
            "b_entry": d.entry_id,
            "b_ledger": d.ledger_entry_id,
            "b_pending": d.pending_actions,
            "b_rule": d.rule,
        }
        for d in done
    ]
    if params:
        await session.execute(_COMPLETE, params)


async def processed_ids(session: AsyncSession, guild_id: int, ids: Iterable[int]) -> set[int]:
    wanted = list(ids)
    if not wanted:
        return set()
    rows = await session.scalars(
        select(AuditProcessed.entry_id).where(
            AuditProcessed.guild_id == guild_id, AuditProcessed.entry_id.in_(wanted)
        )
    )
    return set(rows)


async def prune_processed(session: AsyncSession, before: dt.datetime) -> int:
    """Forget dedupe rows older than ``before`` (older entries are below every cursor anyway)."""
    result = await session.execute(
        delete(AuditProcessed).where(
            AuditProcessed.processed_at < before, AuditProcessed.pending_actions.is_(None)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
