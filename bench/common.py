"""What every figure shares: the bench policy and server, measuring, and the floor bot.

Latency here is what a person waits for: from the sandbox dispatching INTERACTION_CREATE to the
first answer they can read — a non-deferred callback, or the first follow-up or edit of a
deferred one (``InteractionRecord.answered_loop``). The acknowledgement (``acked_loop``) is
reported beside it because Discord enforces 3 seconds on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from sqlalchemy import insert, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.db.models import Grant, GrantStatus
from bot.db.session import create_session_factory
from bot.policy import load_policy
from sandbox import SandboxDiscord
from sandbox.harness import SandboxWorld
from sandbox.interactions import InteractionOutcome
from sandbox.models import SGuild

POLICY = """
[guild.bench]
approvals_channel = "approvals"
governance_channel = "governance"
pending_ttl = "4h"
expiry_reminder = "0s"
max_pending_per_member = 25
request_cooldown = "0s"

[scope.deploy]
description = "Deploy (quorum of one)"
kind = "role"
role = "deployers"
default_duration = "1h"
max_duration = "2h"
approvers = ["sec-leads"]
approvals_required = 1
requesters = ["engineers"]
reason_required = true
"""


def guild_spec(members: int, *, name: str = "bench", holding: int = 0) -> dict[str, Any]:
    """The bench server: one approver, ``members`` engineers; the first ``holding`` already hold
    the JIT role (seeded grants for the expiry figures)."""
    return {
        "name": name,
        "roles": [
            {"name": "engineers"},
            {"name": "sec-leads"},
            {"name": "deployers", "permissions": ["send_messages", "view_channel"]},
        ],
        "members": [
            {"name": "lead", "roles": ["sec-leads"]},
            *(
                {"name": f"m{i}", "roles": ["engineers", "deployers"] if i < holding else ["engineers"]}
                for i in range(members)
            ),
        ],
        "channels": [{"name": "approvals"}, {"name": "governance"}],
    }


# ----------------------------------------------------------------------------- measuring


def active_grant(
    *,
    guild_id: int,
    scope_id: str,
    subject_id: int,
    role_id: int,
    now: dt.datetime,
    expires_at: dt.datetime,
    duration_seconds: int,
) -> dict[str, Any]:
    """A role grant approved and applied at ``now``, still active: a row for :func:`insert_grants`."""
    return {
        "guild_id": guild_id,
        "scope_id": scope_id,
        "subject_id": subject_id,
        "kind": "role",
        "target_id": role_id,
        "status": GrantStatus.ACTIVE,
        "duration_seconds": duration_seconds,
        "created_at": now,
        "applied_at": now,
        "expires_at": expires_at,
        "reminded_at": now,
        "prior_recorded": True,
        "prior_held": False,
        "attempts": 0,
        "allow_bits": 0,
        "deny_bits": 0,
        "subject_is_bot": False,
        "breakglass": False,
    }


async def insert_grants(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """One transaction, a thousand rows per INSERT."""
    async with create_session_factory(engine)() as session, session.begin():
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Grant), rows[start : start + 1000])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


@dataclass
class Sample:
    """Answer and acknowledgement times of many interactions of one kind, in seconds."""

    answers: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, out: InteractionOutcome) -> None:
        rec = out.record
        if rec.acked_loop is None or rec.answered_loop is None:
            self.errors.append(f"interaction {rec.id} ({rec.name}) was never answered")
            return
        self.acks.append(rec.acked_loop - rec.created_loop)
        self.answers.append(rec.answered_loop - rec.created_loop)

    def summary(self) -> dict[str, float | int]:
        return {
            "n": len(self.answers),
            "answer_p50_ms": round(pct(self.answers, 50) * 1000, 1),
            "answer_p99_ms": round(pct(self.answers, 99) * 1000, 1),
            "answer_max_ms": round(max(self.answers, default=float("nan")) * 1000, 1),
            "ack_max_ms": round(max(self.acks, default=float("nan")) * 1000, 1),
            "errors": len(self.errors),
        }


async def run_all(jobs: Iterable[Callable[[], Awaitable[None]]], concurrency: int) -> float:
    """Run the jobs with at most ``concurrency`` in flight; returns the wall time."""
    queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- the floor


class FloorBot:
    """A plain discord.py bot doing the same Discord work as Warden, without its rules, database
    or ledger: ``/jit request`` answers and posts a card with an Approve button; Approve adds the
    role, updates the card and DMs the member; ``/jit mine`` answers from memory."""

    def __init__(self, sb: SandboxDiscord, guild: SGuild) -> None:
        self.sb = sb
        intents = discord.Intents.default()
        intents.members = True
        self.client = discord.Client(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self.client)
        self._task: asyncio.Task[None] | None = None
        self.granted: dict[int, list[str]] = {}
        self.requests: dict[int, int] = {}  # request number → member id
        approvals_id = guild.channel("approvals").id
        role_id = guild.role("deployers").id
        group = app_commands.Group(name="jit", description="floor")
        floor = self

        @group.command(name="request", description="floor request")
        async def request(
            interaction: discord.Interaction,
            scope: str,
            duration: str | None = None,
            reason: str | None = None,
        ) -> None:
            number = len(floor.requests) + 1
            floor.requests[number] = interaction.user.id
            await interaction.response.send_message(
                f"Request #{number} for `{scope}` is waiting for approval.", ephemeral=True
            )
            channel = floor.client.get_channel(approvals_id)
            assert isinstance(channel, discord.TextChannel)
            view = discord.ui.View(timeout=None)
            view.add_item(discord.ui.Button(label="Approve", custom_id=f"floor:approve:{number}"))
            await channel.send(f"Access request #{number} by {interaction.user.mention}", view=view)

        @group.command(name="mine", description="floor mine")
        async def mine(interaction: discord.Interaction) -> None:
            held = floor.granted.get(interaction.user.id, [])
            await interaction.response.send_message(f"Active: {', '.join(held) or 'none'}", ephemeral=True)

        self.tree.add_command(group)

        @self.client.event
        async def on_interaction(interaction: discord.Interaction) -> None:
            custom_id = (interaction.data or {}).get("custom_id", "")
            if interaction.type is not discord.InteractionType.component or not custom_id.startswith(
                "floor:approve:"
            ):
                return
            number = int(custom_id.rsplit(":", 1)[1])
            guild_obj = interaction.guild
            assert guild_obj is not None
            member = guild_obj.get_member(floor.requests[number])
            assert member is not None
            # Like any bot whose work takes a REST call: acknowledge within Discord's 3 seconds first.
            await interaction.response.defer()
            await member.add_roles(discord.Object(role_id), reason=f"floor request #{number}")
            floor.granted.setdefault(member.id, []).append("deploy")
            await interaction.edit_original_response(content=f"Access request #{number}: approved", view=None)
            with contextlib.suppress(discord.HTTPException):
                await member.send(f"Request #{number} is approved.")

        async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
            return None

        self.client.before_identify_hook = no_identify_delay  # type: ignore[method-assign]

    async def start(self) -> None:
        self.sb.point_discord_here()
        self.sb.gateway.ready.clear()
        self._task = asyncio.create_task(self.client.start(self.sb.token))
        await asyncio.wait_for(self.client.wait_until_ready(), 60)
        await self.tree.sync()

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)


@contextlib.asynccontextmanager
async def fresh_database(url: str, suffix: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database beside ``url``'s for one figure, dropped afterwards: each
    figure starts from an empty ledger (its own signing key), however many figures share the URL."""
    base = make_url(url)
    name = f"{base.database}_{suffix}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@contextlib.asynccontextmanager
async def warden_world(prefix: str, members: int) -> AsyncIterator[tuple[SandboxWorld, SGuild]]:
    """The bench policy and a fresh SQLite database in a temporary directory, with Warden started
    on a guild of ``members`` members (the scripts that measure one bot on its own)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        policy_path = Path(tmp) / "bench.toml"
        policy_path.write_text(POLICY, encoding="utf-8")
        async with SandboxWorld(
            load_policy(policy_path), database_url=f"sqlite+aiosqlite:///{tmp}/b.db"
        ) as world:
            guild = world.add_guild(guild_spec(members))
            await world.start_bot(timeout=60)
            yield world, guild
