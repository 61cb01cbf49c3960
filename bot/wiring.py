"""The composition root: every service Warden runs, built once from its inputs.

`warden run`, the sandbox harness and the tests all build the bot here, so what they
run is the same object graph; only the inputs and the ``Tuning`` knobs differ.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.approvals.service import ApprovalService
from bot.attest.adapter import DiscordAttestPort
from bot.attest.service import AttestService
from bot.audit.adopt import RequestAdopter
from bot.audit.classify import Classifier
from bot.audit.defaults import effective_rules
from bot.audit.grant_ledger import SqlGrantLedger
from bot.audit.held import HeldChanges
from bot.audit.listener import AuditListener
from bot.audit.recorder import LedgerRecorder
from bot.audit.runner import AuditRunner
from bot.client import WardenBot
from bot.clock import Clock
from bot.controls import ControlMap
from bot.db.pins import load_pins
from bot.decisions.checkpoints import LedgerCheckpointer
from bot.decisions.outbox import NarrativePoster
from bot.decisions.service import DecisionService
from bot.discord_io.audit import CacheGuildFacts, DiscordReverter, audit_log_pages
from bot.discord_io.notifier import Notifier, governance_resolver
from bot.discord_io.ops import DiscordOps
from bot.grants.service import APPLY_CLAIM, CLAIM_FOR, STALE_APPROVED, Claims, GrantService
from bot.inventory.activity import ActivityTracker
from bot.inventory.live import LiveInventory
from bot.inventory.service import InventoryService
from bot.jobs import Jobs
from bot.ledger import Signer
from bot.policy import GuildDirectory, Policy
from bot.requests.service import RequestService
from bot.requests.sweeps import PendingSweeps
from bot.services.base import CARD_GRACE, Core
from bot.services.killpoints import KillSwitch
from bot.tokens.dormancy import Dormancy
from bot.tokens.service import TokenService


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
    # Scheduled ledger checkpoints (WARDEN_CHECKPOINT_PATH / WARDEN_CHECKPOINT_SECONDS): a directory
    # (a new file each time) or a file; None: only `warden audit checkpoint` writes them.
    checkpoint_path: Path | None = None
    checkpoint_seconds: float = 3600.0
    # How often every governed guild's inventory is refreshed from Discord (REST reads).
    inventory_seconds: float = 3600.0
    # How long an apply and a removal hold their grant, and how old a decided but never claimed grant
    # must be before a sweep applies it (another process may be about to): docs/reliability.md.
    apply_claim_seconds: float = APPLY_CLAIM.total_seconds()
    claim_seconds: float = CLAIM_FOR.total_seconds()
    stale_approved_seconds: float = STALE_APPROVED.total_seconds()
    # How long after its request a card still not posted counts as lost (the sweep posts it).
    card_grace_seconds: float = CARD_GRACE.total_seconds()
    # The crash campaign's kill point (bot/services/killpoints.py): None in production.
    kill_at: str | None = None
    # Answer first: cards and DMs follow the person's answer (bot/discord_io/follow_ups.py). Off, they
    # come before it, as they once did (bench/answer_first.py measures one against the other).
    answer_first: bool = True

    def claims(self) -> Claims:
        return Claims(
            apply=dt.timedelta(seconds=self.apply_claim_seconds),
            removal=dt.timedelta(seconds=self.claim_seconds),
            stale_approved=dt.timedelta(seconds=self.stale_approved_seconds),
        )

    @classmethod
    def overridden(cls, overrides: dict[str, str], kill_at: str | None = None) -> Tuning:
        """Production's tuning with ``name → value`` overrides of its number fields (WARDEN_TUNING).

        Raises ValueError naming the field and what it accepts.
        """
        numbers = {f.name: f.type for f in dataclasses.fields(cls) if f.type in ("float", "int")}
        values: dict[str, float | int] = {}
        for name, text in overrides.items():
            if name not in numbers:
                raise ValueError(f"'{name}' is not a tuning knob; use one of: {', '.join(sorted(numbers))}")
            try:
                value = float(text) if numbers[name] == "float" else int(text)
            except ValueError:
                raise ValueError(f"{name}: '{text}' is not a number") from None
            if value <= 0:
                raise ValueError(f"{name}: must be above zero, not {text}")
            values[name] = value
        KillSwitch(kill_at)  # an unknown kill point is an error here, not a crash that never happens
        return dataclasses.replace(cls(), kill_at=kill_at, **values)  # type: ignore[arg-type]


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
    tokens: TokenService
    inventory: InventoryService
    live_inventory: LiveInventory
    activity: ActivityTracker
    audit: AuditRunner
    attest: AttestService
    held: HeldChanges


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
    core = Core(
        guilds=guilds,
        sessions=session_factory,
        clock=clock,
        decisions=decisions,
        kill=KillSwitch(tuning.kill_at),
    )
    ops = DiscordOps(
        client, attempts=tuning.discord_attempts, max_wait=tuning.discord_max_wait, sleep=tuning.discord_sleep
    )
    notifier = Notifier(client, guilds, session_factory)
    tokens = TokenService(session_factory, clock)
    grants = GrantService(core, ops=ops, notifier=notifier, tokens=tokens, claims=tuning.claims())
    requests = RequestService(core, grants=grants, notifier=notifier)
    approvals = ApprovalService(core, grants=grants, notifier=notifier)
    pending = PendingSweeps(
        core, notifier=notifier, card_grace=dt.timedelta(seconds=tuning.card_grace_seconds)
    )
    poster = NarrativePoster(session_factory, clock, controls, governance_resolver(client, guilds))
    audit, held = build_audit(
        client,
        core,
        policy=policy,
        notifier=notifier,
        ops=ops,
        card_grace=dt.timedelta(seconds=tuning.card_grace_seconds),
    )
    inventory = InventoryService(session_factory, clock, decisions=decisions)
    live_inventory = LiveInventory(client, inventory, clock, governed=lambda gid: guilds.get(gid) is not None)
    attest = AttestService(
        core, port=DiscordAttestPort(client, guilds, ops, live_inventory), inventory=inventory
    )
    checkpoints = (
        None
        if tuning.checkpoint_path is None
        else LedgerCheckpointer(
            session_factory,
            signer,
            clock,
            tuning.checkpoint_path,
            governance_resolver(client, guilds),
            guild_ids=lambda: [g.id for g in client.guilds if guilds.get(g.id) is not None],
        )
    )
    jobs = Jobs(
        grants=grants,
        pending=pending,
        poster=poster,
        attest=attest,
        held=held,
        sweep_seconds=tuning.sweep_seconds,
        narrative_seconds=tuning.narrative_seconds,
        audit=audit,
        write_checkpoint=checkpoints.run if checkpoints is not None else None,
        checkpoint_seconds=tuning.checkpoint_seconds,
        dormancy=Dormancy(core, tokens=tokens, grants=grants, notifier=notifier),
        inventory=live_inventory,
        inventory_seconds=tuning.inventory_seconds,
    )
    return Services(
        guilds,
        decisions,
        ops,
        notifier,
        grants,
        requests,
        approvals,
        pending,
        poster,
        jobs,
        tokens,
        inventory,
        live_inventory,
        ActivityTracker(session_factory, clock, inventory),
        audit,
        attest,
        held,
    )


def build_audit(
    client: discord.Client,
    core: Core,
    *,
    policy: Policy,
    notifier: Notifier,
    ops: DiscordOps,
    card_grace: dt.timedelta = CARD_GRACE,
) -> tuple[AuditRunner, HeldChanges]:
    """The audit listener: the policy's rules then the defaults, over the cache, the grants and the
    ledger; and the held changes its ``approve`` decisions open (restored through the same reverter)."""
    facts = CacheGuildFacts(client)
    classifier = Classifier(
        policy, effective_rules(policy.rules), facts, SqlGrantLedger(core.sessions), guilds=core.guilds
    )
    reverter = DiscordReverter(client, ops)
    held = HeldChanges(
        core,
        facts=facts,
        reverter=reverter,
        cards=notifier,
        adopter=RequestAdopter(core, facts=facts, post_card=notifier.post_request_card),
        card_grace=card_grace,
    )
    listener = AuditListener(
        classifier=classifier,
        facts=facts,
        recorder=LedgerRecorder(core.decisions),
        reverter=reverter,
        clock=core.clock,
        session_factory=core.sessions,
        approvals=held,
    )
    runner = AuditRunner(
        listener,
        fetch_page=audit_log_pages(client, ops),
        snapshot=facts,
        governed=lambda gid: core.guilds.get(gid) is not None,
        guild_ids=lambda: [g.id for g in client.guilds],
    )
    return runner, held


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
    # The foundations the bot and its services are both handed.
    shared: dict[str, Any] = {
        "policy": policy,
        "clock": clock,
        "session_factory": session_factory,
        "tuning": tuning or Tuning(),
    }
    controls = controls or ControlMap.load_default()
    wire = functools.partial(build_services, signer=signer, controls=controls, **shared)
    return WardenBot.create(shard_ids=shard_ids, shard_count=shard_count, wire=wire, **shared)
