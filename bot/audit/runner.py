"""The audit room at run time: live entries in order, catch-up, start-up state comparison.

The gateway hands every raw ``GUILD_AUDIT_LOG_ENTRY_CREATE`` to :meth:`AuditRunner.submit`;
one worker decides them in arrival order, a batch at a time (a raid of a thousand entries
is a handful of transactions, and SQLite never sees two writers from here). Catch-up from
the persisted cursor runs at start-up and after every resume or reconnect; the dedupe rows
make sure an entry seen live and read back again is decided once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from bot.audit.events import snowflake
from bot.audit.listener import AuditListener, CatchUpResult, HandleResult
from bot.audit.ports import FetchPage, GuildSnapshot
from bot.services.base import DB_DOWN
from bot.services.errors import Unavailable

log = logging.getLogger(__name__)

#: Most live entries decided in one transaction.
BATCH = 200


@dataclass
class SweepReport:
    retried: int = 0
    summaries: int = 0
    failures: int = 0


@dataclass
class StartReport:
    caught_up: list[CatchUpResult] = field(default_factory=list)
    drift: list[HandleResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass(eq=False)
class AuditRunner:
    """The listener, with where audit-log pages and the guilds' state come from, and which
    guilds are here (``guild_ids``) and governed."""

    listener: AuditListener
    _: KW_ONLY
    fetch_page: FetchPage
    snapshot: GuildSnapshot
    governed: Callable[[int], bool]
    guild_ids: Callable[[], Iterable[int]]
    handled: int = field(default=0, init=False)  # live entries decided (or skipped as duplicates/ignored)
    _queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue, init=False, repr=False)
    _worker: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _catch_up_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def _governed_ids(self, guild_ids: Iterable[int] | None = None) -> list[int]:
        """The governed guilds among ``guild_ids`` (default: every guild here)."""
        return [g for g in (self.guild_ids() if guild_ids is None else guild_ids) if self.governed(g)]

    # ---- live entries ---------------------------------------------------------------------------

    def set_warden_user(self, user_id: int | None) -> None:
        """Warden's own changes (its user id) are never drift."""
        self.listener.classifier.warden_user_id = user_id

    def submit(self, payload: dict[str, Any]) -> None:
        """Queue one raw gateway entry; the worker decides it soon after, in order."""
        gid = snowflake(payload.get("guild_id")) if isinstance(payload, dict) else None
        if gid is None or not self.governed(gid):
            return
        self._queue.put_nowait(payload)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="warden-audit")

    async def _work(self) -> None:
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                events = [self.listener.normalise(p) for p in batch]
                await self.listener.decide_many(events)
            except Exception:
                # The entries stay unclaimed: the next catch-up (resume, restart) reads them again.
                log.exception("deciding %d audit-log entries failed; catch-up will retry them", len(batch))
            finally:
                self.handled += len(batch)
                for _ in batch:
                    self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued entry has been decided (tests, shutdown)."""
        await self._queue.join()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), 10)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker

    # ---- catch-up -------------------------------------------------------------------------------

    def connection_lost(self) -> None:
        self.listener.connection_lost()

    async def catch_up(self, guild_ids: Iterable[int] | None = None) -> list[CatchUpResult]:
        """Read every governed guild's audit log from its cursor (start-up, resume, reconnect)."""
        out: list[CatchUpResult] = []
        async with self._catch_up_lock:
            for gid in self._governed_ids(guild_ids):
                try:
                    out.append(await self.listener.catch_up(gid, self.fetch_page))
                except Exception:
                    log.exception(
                        "audit-log catch-up failed; it runs again at the next resume or start-up",
                        extra={"guild_id": gid},
                    )
        return out

    async def start(self) -> StartReport:
        """At start-up: catch up, then compare state (drift whose audit entry may be gone)."""
        gids = self._governed_ids()
        report = StartReport(caught_up=await self.catch_up(gids))
        for gid in gids:
            decided = [r for c in report.caught_up if c.guild_id == gid for r in c.results]
            try:
                report.drift += await self.listener.reconcile(gid, self.snapshot, just_reverted=decided)
            except Exception as exc:
                log.exception("start-up state comparison failed", extra={"guild_id": gid})
                report.failures.append(f"{gid}: {type(exc).__name__}")
        return report

    # ---- on a schedule --------------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """Retry refused reverts, close quiet bursts, note that in-sync guilds are still watched."""
        report = SweepReport()
        for gid in self._governed_ids():
            try:
                report.retried += await self.listener.retry_pending(gid)
            except (Unavailable, *DB_DOWN) as exc:
                report.failures += 1  # one line while the database is down, not a traceback per sweep
                log.error("refused reverts not retried: the database is unavailable (%s)", type(exc).__name__)
            except Exception:
                report.failures += 1
                log.exception("retrying refused reverts failed", extra={"guild_id": gid})
        try:
            report.summaries = await self.listener.flush_bursts()
            await self.listener.heartbeat()
        except (Unavailable, *DB_DOWN) as exc:
            report.failures += 1
            log.error(
                "audit burst summaries not recorded: the database is unavailable (%s)", type(exc).__name__
            )
        except Exception:
            report.failures += 1
            log.exception("audit burst summaries failed; they are recorded on the next sweep")
        return report
