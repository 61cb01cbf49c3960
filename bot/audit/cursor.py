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
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
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


async def claim_entry(
    session: AsyncSession, guild_id: int, entry_id: int, now: dt.datetime
) -> AuditProcessed | None:
    """Mark the entry processed in this transaction; None if it already was (by anyone)."""
    existing = await session.scalar(
        select(AuditProcessed.id).where(
            AuditProcessed.guild_id == guild_id, AuditProcessed.entry_id == entry_id
        )
    )
    if existing is not None:
        return None
    row = AuditProcessed(guild_id=guild_id, entry_id=entry_id, processed_at=now)
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


async def claim_entries(
    session: AsyncSession, guild_id: int, entry_ids: Iterable[int], now: dt.datetime
) -> dict[int, AuditProcessed]:
    """Claim many entries at once (a catch-up page); returns the rows claimed by this call.

    One query and one flush for the page; if another process claimed one of them meanwhile,
    falls back to claiming entry by entry so only the contested ones are skipped.
    """
    wanted = list(dict.fromkeys(entry_ids))
    taken = await processed_ids(session, guild_id, wanted)
    fresh = [eid for eid in wanted if eid not in taken]
    rows = {eid: AuditProcessed(guild_id=guild_id, entry_id=eid, processed_at=now) for eid in fresh}
    try:
        async with session.begin_nested():
            session.add_all(rows.values())
    except IntegrityError:
        claimed = {}
        for eid in fresh:
            row = await claim_entry(session, guild_id, eid, now)
            if row is not None:
                claimed[eid] = row
        return claimed
    return rows


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
