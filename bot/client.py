"""WardenBot: intents, allowed mentions, services wired once, extensions, scheduler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.ext import commands
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.controls import ControlMap
from bot.interactions import answer_error
from bot.jobs import Jobs
from bot.ledger import Signer
from bot.narrative import NarrativePoster
from bot.policy import Policy
from bot.services.decisions import DecisionService
from bot.services.discord_ops import DiscordOps
from bot.services.grants import GrantService
from bot.services.notify import Notifier, governance_resolver
from bot.services.requests import RequestService

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.jit", "cogs.approvals", "cogs.admin")


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
    return intents


class WardenBot(commands.Bot):
    def __init__(
        self,
        *,
        policy: Policy,
        clock: Clock,
        session_factory: async_sessionmaker[AsyncSession],
        signer: Signer,
        controls: ControlMap | None = None,
        sweep_seconds: float = 10.0,
        narrative_seconds: float = 2.0,
        sync_commands: bool = True,
        run_scheduler: bool = True,
        guild_ready_timeout: float = 2.0,
        **client_options: Any,
    ) -> None:
        super().__init__(
            **client_options,
            guild_ready_timeout=guild_ready_timeout,
            command_prefix=commands.when_mentioned,
            intents=warden_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )
        self.policy = policy
        self.clock = clock
        self.session_factory = session_factory
        self.signer = signer
        self.controls = controls or ControlMap.load_default()
        self.decisions = DecisionService(signer, self.controls, clock)
        self.ops = DiscordOps(self)
        self.notifier = Notifier(self, policy, session_factory)
        self.grants = GrantService(
            policy=policy,
            session_factory=session_factory,
            clock=clock,
            decisions=self.decisions,
            ops=self.ops,
            notifier=self.notifier,
        )
        self.requests = RequestService(
            policy=policy,
            session_factory=session_factory,
            clock=clock,
            decisions=self.decisions,
            grants=self.grants,
            notifier=self.notifier,
        )
        self.poster = NarrativePoster(
            session_factory, clock, self.controls, governance_resolver(self, policy)
        )
        self.jobs = Jobs(
            grants=self.grants,
            requests=self.requests,
            poster=self.poster,
            sweep_seconds=sweep_seconds,
            narrative_seconds=narrative_seconds,
        )
        # Set once the start-up catch-up sweep has run (tests and the sandbox wait for it).
        self.caught_up = asyncio.Event()
        self._sync_commands = sync_commands
        self._run_scheduler = run_scheduler
        self.tree.on_error = self._on_app_command_error  # type: ignore[method-assign]

    @classmethod
    def create(cls, *, shard_ids: list[int] | None, shard_count: int | None, **kw: Any) -> WardenBot:
        """One process for everything, or only ``shard_ids`` of ``shard_count`` gateway shards."""
        if shard_count is None:
            return cls(**kw)
        return ShardedWardenBot(shard_ids=shard_ids, shard_count=shard_count, **kw)

    async def _on_app_command_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await answer_error(interaction, error)

    async def setup_hook(self) -> None:
        for ext in EXTENSIONS:
            try:
                await self.load_extension(ext)
            except Exception:
                log.exception("failed to load extension %s", ext)
                raise
        if self._sync_commands:
            await self.tree.sync()

    async def on_ready(self) -> None:
        log.info("connected as %s to %d guild(s)", self.user, len(self.guilds))
        for guild in self.guilds:
            if self.policy.guild_policy(guild.id, guild.name) is None:
                log.warning(
                    "no policy for guild %s; Warden ignores it", guild.name, extra={"guild_id": guild.id}
                )
        # Catch up on everything that fell due while the bot was down, then keep sweeping.
        report = await self.jobs.run_due()
        if report.expired or report.requests_expired:
            log.info("caught up after start-up: %s", report)
        self.caught_up.set()
        if self._run_scheduler:
            self.jobs.start()

    async def close(self) -> None:
        await self.jobs.stop()
        await super().close()


class ShardedWardenBot(WardenBot, commands.AutoShardedBot):
    """Warden on some of Discord's gateway shards: it hears only its shards' guilds.

    Everything else is shared through the database: sweeps claim rows, Discord changes go by id
    over REST, so any process removes any guild's expired grants (docs/operations.md).
    """
