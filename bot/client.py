"""WardenBot: intents, allowed mentions, extensions, scheduler; its services come from bot.wiring."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.discord_io.ops import DISCORD_ERRORS, describe_error, uncertain
from bot.discord_io.replies import answer_error
from bot.health.metrics import discord_http_trace
from bot.health.startup import log_startup_report
from bot.policy import Policy

if TYPE_CHECKING:
    from bot.wiring import Services, Tuning

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.jit", "cogs.approvals", "cogs.admin", "cogs.inventory", "cogs.audit")
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
        )
        self.policy = policy
        self.clock = clock
        self.session_factory = session_factory
        self.tuning = tuning
        services = wire(self)
        self.guild_policies = services.guilds
        self.decisions = services.decisions
        self.grants = services.grants
        self.requests = services.requests
        self.approvals = services.approvals
        self.jobs = services.jobs
        self.poster = services.poster  # /warden doctor: narratives waiting for the governance channel
        self.tokens = services.tokens
        self.inventory = services.inventory
        self.live_inventory = services.live_inventory
        self.activity_seen = services.activity
        self.audit = services.audit
        self._hear_raw_audit_entries()
        # Set once the start-up catch-up sweep has run (tests and the sandbox wait for it).
        self.caught_up = asyncio.Event()
        self.tree.on_error = self._on_app_command_error  # type: ignore[method-assign]

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

    def _bind(self, guild: discord.Guild, *, warn: bool = True) -> None:
        """Match the guild to its policy table once; services then look it up by id."""
        if self.guild_policies.bind(guild.id, guild.name) is None and warn:
            log.warning("no policy for guild %s; Warden ignores it", guild.name, extra={"guild_id": guild.id})

    async def on_ready(self) -> None:
        log.info("connected as %s to %d guild(s)", self.user, len(self.guilds))
        for guild in self.guilds:
            self._bind(guild)
        # Catch up on everything that fell due while the bot was down, then keep sweeping.
        report = await self.jobs.run_due()
        if report.expired or report.requests_expired:
            log.info("caught up after start-up: %s", report)
        # Read every audit-log entry made while Warden was away, then compare state.
        self.audit.set_warden_user(self.user.id if self.user else None)
        audit = await self.audit.start()
        if audit.drift:
            log.warning("start-up state comparison found %d change(s) nobody sanctioned", len(audit.drift))
        await self.jobs.deliver_narratives()
        self.caught_up.set()
        await log_startup_report(self)
        if self.tuning.run_scheduler:
            self.jobs.start()

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self._bind(guild)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        self._bind(guild, warn=False)

    async def on_guild_update(self, before: discord.Guild, after: discord.Guild) -> None:
        if before.name != after.name:
            self._bind(after, warn=False)

    async def close(self) -> None:
        await self.audit.stop()
        await self.jobs.stop()
        await super().close()


class ShardedWardenBot(WardenBot, commands.AutoShardedBot):
    """Warden on some of Discord's gateway shards: it hears only its shards' guilds.

    Everything else is shared through the database: sweeps claim rows, Discord changes go by id
    over REST, so any process removes any guild's expired grants (docs/operations.md).
    """
