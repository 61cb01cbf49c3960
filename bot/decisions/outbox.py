"""The narrative outbox: posts each decision's narrative to its guild's governance channel.

A row is written with every ledger entry (``DecisionService.record``) and posted here
after the transaction commits, so a rolled-back decision never reaches the channel and
a Discord outage never loses one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable

import discord
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.controls import ControlMap
from bot.db.models import LedgerEntry, NarrativeOutbox
from bot.decisions.narrative import (
    DESCRIPTION_LIMIT,
    FIELD_VALUE_LIMIT,
    NO_PINGS,
    ORANGE,
    TITLE_LIMIT,
    clip,
    render_narrative,
)
from bot.durations import discord_ts
from bot.escape import user_text
from bot.services.base import claim

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Backlog:
    """Narratives of one guild Discord has refused or that found no channel, still waiting."""

    waiting: int
    last_error: str | None = None


@dataclasses.dataclass(frozen=True)
class _Claimed:
    outbox_id: int
    entry_id: int
    guild_id: int
    attempts: int
    entry: LedgerEntry


class NarrativePoster:
    """Posts queued narratives to governance channels, in ledger order per guild.

    Safe with several bot processes on one database: each row is claimed with a
    conditional UPDATE before it is posted, and a failed or in-flight row holds
    back the later rows of its guild (for ``HOLD_ATTEMPTS`` attempts, so one
    message Discord keeps refusing cannot silence a governance channel forever).
    """

    CLAIM_SECONDS = 60
    CLAIM_SECONDS_PER_ROW = 2  # a batch posts one row after another; later rows are claimed longer
    BACKOFF_BASE_SECONDS = 5
    BACKOFF_MAX_SECONDS = 600
    HOLD_ATTEMPTS = 5
    #: A guild whose channel failed with this many narratives waiting gets them in one summary.
    BACKLOG_SUMMARY_AT = 10
    #: So many narratives waiting at once (10,000 grants ending together) are one summary too:
    #: a governance channel flooded message by message is unreadable, and the flood would hold
    #: Discord's rate limit for minutes. Every decision stays in the ledger with its proof.
    BURST_SUMMARY_AT = 100
    BACKLOG_LINES = 10

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        controls: ControlMap,
        resolve_channel: Callable[[int], Awaitable[discord.abc.Messageable | None]],
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.controls = controls
        self.resolve_channel = resolve_channel

    def backoff(self, attempts: int) -> dt.timedelta:
        seconds = self.BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
        return dt.timedelta(seconds=min(seconds, self.BACKOFF_MAX_SECONDS))

    async def backlog(self, guild_id: int) -> Backlog:
        """What is waiting for this guild's governance channel after a failure (doctor, start-up)."""
        o = NarrativeOutbox
        async with self.session_factory() as session:
            waiting = await session.scalar(
                select(func.count()).where(o.guild_id == guild_id, o.posted_at.is_(None), o.attempts > 0)
            )
            error = await session.scalar(
                select(o.last_error)
                .where(o.guild_id == guild_id, o.posted_at.is_(None), o.last_error.is_not(None))
                .order_by(o.entry_id.desc())
                .limit(1)
            )
        return Backlog(int(waiting or 0), error)

    async def deliver_due(self, limit: int = 50) -> int:
        """Post due narratives (at most ``limit``); returns how many were posted."""
        posted = await self._summarise_backlogs()
        claimed = await self._claim(limit)
        stalled: set[int] = set()
        for item in claimed:
            if item.guild_id in stalled:
                await self._release(item)  # keep ledger order: nothing after a failed row
                continue
            if await self._post(item):
                posted += 1
            elif item.attempts + 1 < self.HOLD_ATTEMPTS:
                stalled.add(item.guild_id)
        return posted

    async def _summarise_backlogs(self) -> int:
        """A guild whose governance channel failed and has many narratives waiting gets one
        summary message for all of them (each stays in the ledger with its proof)."""
        now = self.clock.now()
        o = NarrativeOutbox
        async with self.session_factory() as session:
            rows = (
                await session.execute(
                    select(o.guild_id, func.count(), func.max(o.attempts))
                    .where(o.posted_at.is_(None), o.guild_id.is_not(None))
                    .group_by(o.guild_id)
                )
            ).all()
        done = 0
        for guild_id, waiting, attempts in rows:
            failed = (attempts or 0) > 0
            if guild_id is not None and (
                (failed and waiting >= self.BACKLOG_SUMMARY_AT) or waiting >= self.BURST_SUMMARY_AT
            ):
                done += await self._summarise(guild_id, now, failed=failed)
        return done

    async def _summarise(self, guild_id: int, now: dt.datetime, *, failed: bool = True) -> int:
        o = NarrativeOutbox
        # A token only this call writes, so the rows it claimed are told apart from another process's.
        token = now + dt.timedelta(seconds=self.CLAIM_SECONDS, microseconds=secrets.randbelow(999_999) + 1)
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(o)
                .where(
                    o.guild_id == guild_id,
                    o.posted_at.is_(None),
                    or_(o.next_attempt_at.is_(None), o.next_attempt_at <= now),
                    or_(o.claimed_until.is_(None), o.claimed_until < now),
                )
                .values(claimed_until=token)
                .execution_options(synchronize_session=False)
            )
        async with self.session_factory() as session:
            mine = (
                await session.execute(
                    select(o.id, o.attempts, LedgerEntry)
                    .join(LedgerEntry, LedgerEntry.id == o.entry_id)
                    .where(o.guild_id == guild_id, o.claimed_until == token, o.posted_at.is_(None))
                    .order_by(o.entry_id)
                )
            ).all()
        if not mine:
            return 0
        ids = [row[0] for row in mine]
        entries = [row[2] for row in mine]
        try:
            channel = await self.resolve_channel(guild_id)
            if channel is None:
                raise LookupError("governance channel not found")
            embed = self._backlog_embed(entries, failed=failed)
            message = await channel.send(embed=embed, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, LookupError) as exc:
            error = clip(f"{type(exc).__name__}: {exc}", 300)
            attempts = max(row[1] for row in mine) + 1
            await self._update(
                ids,
                claimed_until=None,
                attempts=attempts,
                next_attempt_at=now + self.backoff(attempts),
                last_error=error,
            )
            log.warning(
                "%d narratives for guild %s still not posted: %s", len(ids), guild_id, error,
                extra={"guild_id": guild_id},
            )  # fmt: skip
            return 0
        await self._update(
            ids, posted_at=self.clock.now(), message_id=getattr(message, "id", None), claimed_until=None
        )
        log.info(
            "posted a summary of %d narratives that waited for the governance channel", len(ids),
            extra={"guild_id": guild_id},
        )  # fmt: skip
        return len(ids)

    async def _update(self, ids: list[int], **values: object) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id.in_(ids), NarrativeOutbox.posted_at.is_(None))
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def _backlog_embed(self, entries: list[LedgerEntry], *, failed: bool = True) -> discord.Embed:
        counts = Counter(e.outcome for e in entries)
        first, last = entries[0], entries[-1]
        why = (
            f"The governance channel could not be written to from {discord_ts(first.created_at)} "
            f"to {discord_ts(last.created_at)}."
            if failed
            else f"{len(entries)} decisions were made at once, from {discord_ts(first.created_at)} "
            f"to {discord_ts(last.created_at)}."
        )
        embed = discord.Embed(
            title=clip(
                f"{len(entries)} decisions waited for this channel"
                if failed
                else f"{len(entries)} decisions at once",
                TITLE_LIMIT,
            ),
            description=clip(
                f"{why} Every decision is in the signed ledger "
                f"(#{first.id}–#{last.id}, `warden audit export`); here they are summarised: "
                + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
                + ".",
                DESCRIPTION_LIMIT,
            ),
            colour=ORANGE,
        )
        lines = [
            f"#{e.id} {e.outcome} `{e.rule}` — {user_text(e.reason, empty='none')}"
            for e in entries[-self.BACKLOG_LINES :]
        ]
        more = len(entries) - len(lines)
        title = "Latest" + (f" ({more} earlier not shown)" if more else "")
        embed.add_field(name=title, value=clip("\n".join(lines), FIELD_VALUE_LIMIT), inline=False)
        return embed

    async def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock.now()
        o = NarrativeOutbox
        due = and_(
            o.posted_at.is_(None),
            or_(o.next_attempt_at.is_(None), o.next_attempt_at <= now),
            or_(o.claimed_until.is_(None), o.claimed_until < now),
        )
        # Per guild, the first unposted row that is waiting (backing off or in flight elsewhere).
        barrier = (
            select(o.guild_id.label("guild_id"), func.min(o.entry_id).label("entry_id"))
            .where(
                o.posted_at.is_(None),
                o.attempts < self.HOLD_ATTEMPTS,
                or_(o.next_attempt_at > now, o.claimed_until >= now),
            )
            .group_by(o.guild_id)
            .subquery()
        )
        candidates = (
            select(o.id, o.entry_id, o.guild_id, o.attempts)
            .outerjoin(barrier, barrier.c.guild_id == o.guild_id)
            .where(
                due,
                o.guild_id.is_not(None),
                or_(barrier.c.entry_id.is_(None), o.entry_id < barrier.c.entry_id),
            )
            .order_by(o.entry_id)
            .limit(limit)
        )
        async with self.session_factory() as session:
            rows = (await session.execute(candidates)).all()
            mine: list[tuple[int, int, int, int]] = []
            lost: set[int] = set()
            for outbox_id, entry_id, guild_id, attempts in rows:
                assert guild_id is not None  # the query only selects rows with a guild
                if guild_id in lost:
                    continue
                until = now + dt.timedelta(
                    seconds=self.CLAIM_SECONDS + self.CLAIM_SECONDS_PER_ROW * len(mine)
                )
                free = (
                    o.id == outbox_id,
                    o.posted_at.is_(None),
                    or_(o.claimed_until.is_(None), o.claimed_until < now),
                )
                if await claim(session, o, *free, claimed_until=until):
                    mine.append((outbox_id, entry_id, guild_id, attempts))
                else:
                    lost.add(guild_id)  # another process has it: leave the rest of this guild to it
            await session.commit()
            if not mine:
                return []
            entries = {
                e.id: e
                for e in (
                    await session.scalars(select(LedgerEntry).where(LedgerEntry.id.in_([m[1] for m in mine])))
                ).all()
            }
        return [
            _Claimed(outbox_id, entry_id, guild_id, attempts, entries[entry_id])
            for outbox_id, entry_id, guild_id, attempts in mine
        ]

    async def _post(self, item: _Claimed) -> bool:
        context = {"guild_id": item.guild_id, "ledger_entry_id": item.entry_id}
        try:
            embed = render_narrative(item.entry, self.controls)
            channel = await self.resolve_channel(item.guild_id)
            if channel is None:
                log.warning(
                    "guild %s has no governance channel Warden can post in; narrative for ledger #%s "
                    "is waiting (set governance_channel in the policy and check the bot's permissions)",
                    item.guild_id,
                    item.entry_id,
                    extra=context,
                )
                await self._failed(item, "governance channel not found")
                return False
            message = await channel.send(embed=embed, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            error = clip(f"HTTP {exc.status} (code {exc.code}): {exc.text or type(exc).__name__}", 300)
            await self._failed(item, error)
            log.warning(
                "narrative for ledger #%s in guild %s not posted: %s",
                item.entry_id,
                item.guild_id,
                error,
                extra=context,
            )
            return False
        except Exception as exc:  # a bug must not stop the other guilds' narratives
            await self._failed(item, clip(f"{type(exc).__name__}: {exc}", 300))
            log.exception(
                "narrative for ledger #%s in guild %s failed unexpectedly",
                item.entry_id,
                item.guild_id,
                extra=context,
            )
            return False
        await self._posted(item, getattr(message, "id", None))
        return True

    async def _posted(self, item: _Claimed, message_id: int | None) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id == item.outbox_id, NarrativeOutbox.posted_at.is_(None))
                .values(
                    posted_at=self.clock.now(), message_id=message_id, claimed_until=None, last_error=None
                )
                .execution_options(synchronize_session=False)
            )

    async def _failed(self, item: _Claimed, error: str) -> None:
        attempts = item.attempts + 1
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id == item.outbox_id, NarrativeOutbox.posted_at.is_(None))
                .values(
                    attempts=attempts,
                    next_attempt_at=self.clock.now() + self.backoff(attempts),
                    claimed_until=None,
                    last_error=error,
                )
                .execution_options(synchronize_session=False)
            )

    async def _release(self, item: _Claimed) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id == item.outbox_id, NarrativeOutbox.posted_at.is_(None))
                .values(claimed_until=None)
                .execution_options(synchronize_session=False)
            )
