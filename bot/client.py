"""WardenBot: intents, allowed mentions, extensions, scheduler; its services come from bot.wiring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord.ext import commands
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.pins import claim_pin
from bot.discord_io.follow_ups import FollowUps
from bot.discord_io.ops import DISCORD_ERRORS, describe_error, uncertain
from bot.discord_io.replies import answer_error
from bot.health.metrics import discord_http_trace
from bot.health.startup import log_startup_report
from bot.policy import Policy, pin_key
from bot.services.base import DB_DOWN

if TYPE_CHECKING:
    from bot.wiring import Services, Tuning

log = logging.getLogger(__name__)
T = TypeVar("T")

EXTENSIONS = (
    "cogs.jit",
    "cogs.approvals",
    "cogs.admin",
    "cogs.inventory",
    "cogs.audit",
    "cogs.attest",
)  # attest extends /warden
#: The raw gateway event carrying one audit-log entry (dispatched as ``raw_audit_log_entry``).
AUDIT_ENTRY_EVENT = "GUILD_AUDIT_LOG_ENTRY_CREATE"


def warden_intents() -> discord.Intents:
    """Only what Warden uses: no message content, no presences."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.members = (
        True  # member roles in the cache, GUILD_MEMBER_UPDATE (privileged: enable in the portal)
    )
    intents.moderation = True  # GUILD_AUDIT_LOG_ENTRY_CREATE (with View Audit Log)
    intents.webhooks = True
    intents.integrations = True
    # MESSAGE_CREATE without content (not privileged): when members, webhooks and bots were last
    # active, which dormancy measures (bot/inventory/activity.py).
    intents.guild_messages = True
    return intents


class WardenBot(commands.Bot):
    """The Discord client. Build it with ``bot.wiring.build_bot``, which wires its services."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Clock,
        session_factory: async_sessionmaker[AsyncSession],
        tuning: Tuning,
        wire: Callable[[discord.Client], Services],
        **client_options: Any,  # discord.py's own: shard ids and count for a sharded process
    ) -> None:
        super().__init__(
            **client_options,
            http_trace=discord_http_trace(),  # Discord status codes and answer latency for /metrics
            guild_ready_timeout=tuning.guild_ready_timeout,
            command_prefix=commands.when_mentioned,
            intents=warden_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            # No message cache: activity is taken from each MESSAGE_CREATE as it arrives and cards are
            # edited by id, so discord.py's copy of the last 1,000 messages would only hold memory.
            max_messages=None,
        )
        self.policy = policy
        self.clock = clock
        self.session_factory = session_factory
        self.tuning = tuning
        # What the commands, buttons, listeners and jobs call (``bot.services.requests`` …), built once.
        self.services = wire(self)
        self._hear_raw_audit_entries()
        # The cards and DMs that follow answers, still running (drained on close; the sandbox
        # waits for one interaction's with ``follow_ups.settled``).
        self.follow_ups = FollowUps(answer_first=tuning.answer_first)
        # Set once the start-up catch-up sweep has run (tests and the sandbox wait for it).
        self.caught_up = asyncio.Event()
        # The custom-id templates of every registered persistent item (buttons and selects), so an
        # interaction that says Warden's but matches none can be answered instead of ignored.
        self.item_templates: set[re.Pattern[str]] = set()
        self._binding = asyncio.Lock()
        # Set once the guilds in sight at start-up are matched to their policy (pins need the database).
        self.bound = asyncio.Event()
        # Start-up, resume and event work still running (``own``): close() waits for it, then cuts
        # it short, before Discord's session and the database go away under it.
        self._own: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self.tree.interaction_check = self._after_binding  # type: ignore[method-assign]
        self.tree.on_error = self._on_app_command_error  # type: ignore[method-assign]

    def add_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None:
        super().add_dynamic_items(*items)
        self.item_templates.update(item.__discord_ui_compiled_template__ for item in items)

    def remove_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None:
        super().remove_dynamic_items(*items)
        self.item_templates.difference_update(item.__discord_ui_compiled_template__ for item in items)

    def _hear_raw_audit_entries(self) -> None:
        """Dispatch ``raw_audit_log_entry`` with Discord's own payload before discord.py parses it:
        the parsed ``AuditLogEntry`` drops fields the rules need (and refuses odd entries)."""
        parsers = self._connection.parsers
        parse = parsers[AUDIT_ENTRY_EVENT]

        def hear(data: Any) -> None:
            self.dispatch("raw_audit_log_entry", data)
            parse(data)

        parsers[AUDIT_ENTRY_EVENT] = hear

    @classmethod
    def create(cls, *, shard_ids: list[int] | None, shard_count: int | None, **kw: Any) -> WardenBot:
        """One process for everything, or only ``shard_ids`` of ``shard_count`` gateway shards."""
        if shard_count is None:
            return cls(**kw)
        return ShardedWardenBot(shard_ids=shard_ids, shard_count=shard_count, **kw)

    async def _on_app_command_error(
        self, interaction: discord.Interaction[WardenBot], error: Exception
    ) -> None:
        await answer_error(interaction, error)

    async def setup_hook(self) -> None:
        for ext in EXTENSIONS:
            try:
                await self.load_extension(ext)
            except Exception:
                log.exception("failed to load extension %s", ext)
                raise
        if self.tuning.sync_commands:
            await self._sync_commands()

    async def _sync_commands(self) -> None:
        """Register the slash commands. A transient Discord failure here (5xx, rate limit, network)
        must not stop Warden from starting: grants fall due whatever the command endpoint says, and
        the commands of the last sync stay registered. Anything else (a bad command) still stops it."""
        try:
            await self.tree.sync()
        except DISCORD_ERRORS as exc:
            if not uncertain(exc):
                raise
            log.error(
                "could not register the slash commands (%s); the ones already registered stay, "
                "and the next start registers them again",
                describe_error(exc),
            )

    async def _after_binding(self, interaction: discord.Interaction[WardenBot]) -> bool:
        """A command that arrives while Warden is still matching servers to policy waits for it (2 s at most)."""
        if not self.bound.is_set():  # almost always set: no timer and task for every interaction
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.bound.wait(), 2.0)
        return True

    async def bind_guilds(self, *, warn: bool | int = True) -> None:
        """Match every guild in sight to its policy table: ids first, then pinned names.

        A table keyed by a name is pinned (in the database) to the one guild with that name the
        first time Warden sees it; afterwards only that guild id gets it (docs/operations.md).
        ``warn``: log guilds without a table (all of them, or only the guild with this id).
        """
        directory = self.services.guilds
        async with self._binding:
            try:
                await directory.refresh()
                sighted = directory.first_sight((g.id, g.name) for g in self.guilds)
                for gp, guild_id, name in sighted:
                    pin = await claim_pin(self.session_factory, pin_key(gp), guild_id, name, self.clock.now())
                    if pin.guild_id == guild_id:
                        log.warning(
                            "pinned [guild.%s] to guild %s (id %d), the only guild with that name; only this "
                            "guild id gets that policy from now on, even if renamed — a server admin "
                            "confirms with /warden pin",
                            gp.key,
                            name,
                            guild_id,
                            extra={"guild_id": guild_id},
                        )
                if sighted:
                    await directory.refresh()
            except DB_DOWN as exc:
                log.error(
                    "could not read the guild pins (%s); tables keyed by a name match no new guild until "
                    "the database answers",
                    type(exc).__name__,
                )
            for guild in self.guilds:
                bound = directory.bind(guild.id, guild.name)
                why = directory.explain(guild.id, guild.name)
                if why:
                    log.warning("no policy for guild %s: %s", guild.name, why, extra={"guild_id": guild.id})
                elif bound is None and warn in (True, guild.id):
                    log.warning(
                        "no policy for guild %s; Warden ignores it", guild.name, extra={"guild_id": guild.id}
                    )
            self.bound.set()

    async def own(self, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``work`` (an event's database and Discord work) so that close() waits for it, and
        cuts it short after the drain, before the HTTP session and the database close: work cut in
        half by a closed session would log failures that never happened (or leave a connection to be
        garbage-collected). Once closing, nothing new starts: ``None``."""
        task = asyncio.current_task()
        if self.stopping or task is None:
            return None
        self._own.add(task)
        try:
            return await work()
        finally:
            self._own.discard(task)

    async def _finish_own_work(self) -> None:
        work = self._own - {asyncio.current_task()}
        if not work:
            return
        _, late = await asyncio.wait(work, timeout=self.follow_ups.drain_seconds)
        for task in late:
            log.warning("start-up or event work cut short at shutdown: %s", task.get_name())
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def on_ready(self) -> None:
        await self.own(self._start_up)

    async def _start_up(self) -> None:
        log.info("connected as %s to %d guild(s)", self.user, len(self.guilds))
        await self.bind_guilds()
        # Catch up on everything that fell due while the bot was down, then keep sweeping.
        report = await self.services.jobs.run_due()
        if report.expired or report.requests_expired:
            log.info("caught up after start-up: %s", report)
        # Read every audit-log entry made while Warden was away, then compare state.
        self.services.audit.set_warden_user(self.user.id if self.user else None)
        audit = await self.services.audit.start()
        if audit.drift:
            log.warning("start-up state comparison found %d change(s) nobody sanctioned", len(audit.drift))
        await self.services.jobs.deliver_narratives()
        self.caught_up.set()
        await log_startup_report(self)
        if self.tuning.run_scheduler:
            self.services.jobs.start()

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.own(lambda: self.bind_guilds(warn=guild.id))

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.own(lambda: self.bind_guilds(warn=False))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # A name no longer ambiguous may pin the guild that stays.
        await self.own(lambda: self.bind_guilds(warn=False))

    async def on_guild_update(self, before: discord.Guild, after: discord.Guild) -> None:
        if before.name != after.name:
            await self.own(lambda: self.bind_guilds(warn=False))

    async def close(self) -> None:
        self.stopping = True
        # While Discord and the database still answer: the answers' follow-ups, then start-up,
        # resume and event work (``own``), then the listener's queue and the scheduler.
        await self.follow_ups.close()
        await self._finish_own_work()
        await self.services.audit.stop()
        await self.services.jobs.stop()
        await super().close()


class ShardedWardenBot(WardenBot, commands.AutoShardedBot):
    """Warden on some of Discord's gateway shards: it hears only its shards' guilds.

    Everything else is shared through the database: sweeps claim rows, Discord changes go by id
    over REST, so any process removes any guild's expired grants (docs/operations.md).
    """
