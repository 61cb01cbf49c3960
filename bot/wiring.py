"""The composition root: every service Warden runs, built once from its inputs.

`warden run`, the sandbox harness and the tests all build the bot here, so what they
run is the same object graph; only the inputs and the ``Tuning`` knobs differ.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.approvals.service import ApprovalService
from bot.client import WardenBot
from bot.clock import Clock
from bot.controls import ControlMap
from bot.db.pins import load_pins
from bot.decisions.outbox import NarrativePoster
from bot.decisions.service import DecisionService
from bot.discord_io.notifier import Notifier, governance_resolver
from bot.discord_io.ops import DiscordOps
from bot.grants.service import GrantService
from bot.jobs import Jobs
from bot.ledger import Signer
from bot.policy import GuildDirectory, Policy
from bot.requests.service import RequestService
from bot.requests.sweeps import PendingSweeps
from bot.services.base import Core


@dataclass(frozen=True)
class Tuning:
    """Timings and switches. Production uses the defaults; tests and the sandbox pass their own."""

    sweep_seconds: float = 10.0  # expiry is checked at least this often, so removal is within 30 s
    narrative_seconds: float = 2.0
    sync_commands: bool = True
    run_scheduler: bool = True
    guild_ready_timeout: float = 2.0
    discord_attempts: int = 4  # tries per grant change in Discord, transient failures only
    discord_max_wait: float = 8.0  # the longest back-off between two tries, in seconds
    # How retries wait (None: asyncio.sleep), so a runner in virtual time can shrink waits without patching.
    discord_sleep: Callable[[float], Awaitable[None]] | None = None
    # How long the Deny button may check eligibility before it opens the modal anyway
    # (the modal must open within Discord's 3 seconds; the submit checks again).
    deny_precheck_seconds: float = 1.5


@dataclass(frozen=True)
class Services:
    """What the bot's commands, buttons and jobs call."""

    guilds: GuildDirectory
    decisions: DecisionService
    ops: DiscordOps
    notifier: Notifier
    grants: GrantService
    requests: RequestService
    approvals: ApprovalService
    pending: PendingSweeps
    poster: NarrativePoster
    jobs: Jobs


def build_services(
    client: discord.Client,
    *,
    policy: Policy,
    clock: Clock,
    session_factory: async_sessionmaker[AsyncSession],
    signer: Signer,
    controls: ControlMap,
    tuning: Tuning,
) -> Services:
    guilds = GuildDirectory(policy, functools.partial(load_pins, session_factory))
    decisions = DecisionService(signer, controls, clock)
    core = Core(guilds=guilds, sessions=session_factory, clock=clock, decisions=decisions)
    ops = DiscordOps(
        client, attempts=tuning.discord_attempts, max_wait=tuning.discord_max_wait, sleep=tuning.discord_sleep
    )
    notifier = Notifier(client, guilds, session_factory)
    grants = GrantService(core, ops=ops, notifier=notifier)
    requests = RequestService(core, grants=grants, notifier=notifier)
    approvals = ApprovalService(core, grants=grants, notifier=notifier)
    pending = PendingSweeps(core, notifier=notifier)
    poster = NarrativePoster(session_factory, clock, controls, governance_resolver(client, guilds))
    jobs = Jobs(
        grants=grants,
        pending=pending,
        poster=poster,
        sweep_seconds=tuning.sweep_seconds,
        narrative_seconds=tuning.narrative_seconds,
    )
    return Services(guilds, decisions, ops, notifier, grants, requests, approvals, pending, poster, jobs)


def build_bot(
    *,
    policy: Policy,
    clock: Clock,
    session_factory: async_sessionmaker[AsyncSession],
    signer: Signer,
    controls: ControlMap | None = None,
    tuning: Tuning | None = None,
    shard_ids: list[int] | None = None,
    shard_count: int | None = None,
) -> WardenBot:
    """The production bot, with every service wired to it.

    With ``shard_count``, the process runs ``shard_ids`` of that many gateway shards (Discord's own
    scale-out; PostgreSQL is the shared store); without it, one process runs every guild.
    """
    knobs = tuning or Tuning()
    wire = functools.partial(
        build_services, policy=policy, clock=clock, session_factory=session_factory, signer=signer
    )
    return WardenBot.create(
        shard_ids=shard_ids,
        shard_count=shard_count,
        policy=policy,
        clock=clock,
        session_factory=session_factory,
        tuning=knobs,
        wire=functools.partial(wire, controls=controls or ControlMap.load_default(), tuning=knobs),
    )
