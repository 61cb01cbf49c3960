"""The scheduler and the database sweeps.

APScheduler only decides *when* to look; the database decides *what* is due. So a
grant never outlives its expiry because the process was down or its clock jumped:
the sweep runs at start-up and every few seconds, and acts on everything overdue.
Every step claims rows atomically, so two processes sharing a database never act twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.grants.service import ExpirySweep, GrantService
from bot.health import metrics
from bot.requests.sweeps import PendingSweeps
from bot.services.base import DB_DOWN
from bot.services.errors import Unavailable
from bot.tokens.dormancy import Dormancy

log = logging.getLogger(__name__)


T = TypeVar("T")


@dataclass
class DueReport(ExpirySweep):
    """What one run of the sweeps did: the grant expiry sweep's counts, then every other step's."""

    reminded: int = 0
    requests_expired: int = 0
    approvers_reminded: int = 0
    cards_posted: int = 0  # cards of pending requests that a dead process never posted
    tokens_revoked: int = 0  # dormant access tokens
    grants_idle_ended: int = 0  # grants ended early because their holder was idle
    narratives: int = 0
    failures: int = 0


class NarrativePosterLike(Protocol):
    async def deliver_due(self) -> int: ...


class AttestSweepLike(Protocol):
    async def run_due(self) -> int: ...


class AuditSweeper(Protocol):
    """The audit room's scheduled work: refused reverts retried, quiet bursts summarised."""

    async def sweep(self) -> Any: ...


class HeldSweeper(Protocol):
    """Held changes nobody decided within the guild's pending TTL expire; restores a crash cut short
    are finished (bot/audit/held.py)."""

    async def run_due(self) -> int: ...


class InventoryRefresher(Protocol):
    """Refreshes every governed guild's inventory from Discord (and asks inferred owners)."""

    async def refresh_all(self) -> int: ...


@dataclass(eq=False, kw_only=True)
class Jobs:
    """The scheduled work: the sweep, narratives, the inventory refresh and ledger checkpoints,
    each every so many seconds; the optional collaborators add their steps when given."""

    grants: GrantService
    pending: PendingSweeps
    poster: NarrativePosterLike
    sweep_seconds: float
    narrative_seconds: float
    attest: AttestSweepLike | None = None
    dormancy: Dormancy | None = None
    audit: AuditSweeper | None = None
    held: HeldSweeper | None = None
    write_checkpoint: Callable[[], Awaitable[Any]] | None = None
    checkpoint_seconds: float = 3600.0
    inventory: InventoryRefresher | None = None
    inventory_seconds: float = 3600.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _narrative_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _inventory_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _scheduler: AsyncIOScheduler | None = field(default=None, init=False, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    def start(self) -> None:
        self._stopped = False
        if self._scheduler is not None:
            return
        self._scheduler = AsyncIOScheduler()
        jobs: list[tuple[str, Callable[[], Awaitable[Any]], float]] = [
            ("warden-sweep", self.run_due, self.sweep_seconds),
            ("warden-narratives", self.deliver_narratives, self.narrative_seconds),
            ("warden-inventory", self.refresh_inventory, self.inventory_seconds),
        ]
        if self.write_checkpoint is not None:
            jobs.append(("warden-checkpoint", self.checkpoint, self.checkpoint_seconds))
        for job_id, run, seconds in jobs:
            self._scheduler.add_job(
                run, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True
            )
        self._scheduler.start()

    async def stop(self) -> None:
        """Stop scheduling, then wait for a sweep in progress: it must not outlive the database.

        APScheduler's shutdown cancels running jobs, which could cut a sweep between a Discord
        change and its commit; so pause, let the sweep in flight finish, and only then shut down.
        A job already started but not yet holding its lock sees the flag and does nothing.
        """
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.pause()
        async with self._lock, self._narrative_lock, self._inventory_lock:
            pass
        for _ in range(3):  # jobs that were waiting for a lock take it, see the flag and return
            await asyncio.sleep(0)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def _step(self, report: DueReport, name: str, coro: Awaitable[T]) -> T | None:
        try:
            return await coro
        except Unavailable:
            # One line per sweep while the database is down, not a traceback every ten seconds.
            report.failures += 1
            log.error(
                "sweep step %s skipped: the database is unavailable; it runs again on the next sweep", name
            )
            return None
        except Exception:
            report.failures += 1
            log.exception("sweep step %s failed; it runs again on the next sweep", name)
            return None

    async def run_due(self) -> DueReport:
        """Act on everything overdue. Idempotent; safe to call at any time, from any process."""
        report = DueReport()
        started = time.monotonic()
        async with self._lock:
            if self._stopped:
                return report
            await self._step(report, "reapply", self.grants.reapply_stale())
            sweep = await self._step(report, "expire", self.grants.expire_due())
            if sweep is not None:
                report = dataclasses.replace(report, **dataclasses.asdict(sweep))
            report.reminded = await self._step(report, "remind", self.grants.remind_due()) or 0
            expired = await self._step(report, "pending-ttl", self.pending.expire_pending())
            report.requests_expired = len(expired or [])
            reminded = await self._step(report, "approver-reminders", self.pending.remind_approvers())
            report.approvers_reminded = len(reminded or [])
            report.cards_posted = await self._step(report, "lost-cards", self.pending.post_lost_cards()) or 0
            if self.attest is not None:
                # Attestation campaigns: the schedule, DMs, reminders, deadlines, removal retries.
                await self._step(report, "attestations", self.attest.run_due())
            if self.dormancy is not None:
                dormant = await self._step(report, "dormant-tokens", self.dormancy.revoke_dormant_tokens())
                report.tokens_revoked = len(dormant or [])
                idle = await self._step(report, "idle-grants", self.dormancy.end_idle_grants())
                report.grants_idle_ended = idle or 0
            if self.audit is not None:
                await self._step(report, "audit", self.audit.sweep())
            if self.held is not None:
                await self._step(report, "held-changes", self.held.run_due())
        report.narratives = await self.deliver_narratives()
        metrics.observe_sweep(time.monotonic() - started, report.failures)
        return report

    async def checkpoint(self) -> Any:
        """Write and post a ledger checkpoint (on its own schedule); a failure is logged, never raised."""
        if self.write_checkpoint is None or self._stopped:
            return None
        try:
            return await self.write_checkpoint()
        except Exception:
            log.exception("ledger checkpoint failed; the next one runs on schedule")
            return None

    async def refresh_inventory(self) -> int:
        """The inventory of every governed guild, from Discord (owners inferred get their DM).

        Less often than the sweep (``Tuning.inventory_seconds``): it reads webhooks, integrations
        and the audit log over REST. ``/warden inventory`` refreshes its guild on demand too.
        """
        async with self._inventory_lock:
            if self.inventory is None or self._stopped:
                return 0
            try:
                return await self.inventory.refresh_all()
            except Exception:
                log.exception("refreshing the inventory failed; it runs again on the next interval")
                return 0

    async def deliver_narratives(self) -> int:
        async with self._narrative_lock:
            total = 0
            if self._stopped:
                return total
            try:
                while (n := await self.poster.deliver_due()) > 0:
                    total += n
            except (Unavailable, *DB_DOWN) as exc:
                # One line while the database is down (like the sweep steps), not a traceback each time.
                log.error(
                    "narratives not posted: the database is unavailable (%s); they stay due",
                    type(exc).__name__,
                )
            except Exception:
                log.exception("posting narratives failed; they stay due")
            return total
