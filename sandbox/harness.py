"""The real Warden bot running against the sandbox: used by `warden sandbox`, scenarios and tests.

The bot is the production WardenBot, connected through discord.py's own HTTP and
gateway code; only the endpoints differ. Time is a ManualClock shared by the bot and
the sandbox, so an eight-hour grant expires in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bot.data
from bot.clock import ManualClock
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.ledger import Signer, verify_chain
from bot.policy import Policy
from bot.wiring import Tuning, build_bot
from sandbox.errors import SandboxError
from sandbox.models import SGuild
from sandbox.server import SandboxDiscord

log = logging.getLogger(__name__)

# Shipped in the package (bot/data links to the repository root copy), so an installed wheel has it too.
EXAMPLE_CONFIG = Path(bot.data.__file__).with_name("config.example.toml")

# The server config.example.toml is written for. Roles are listed bottom to top; Warden's
# own role sits above them all, as an admin would set it up.
ACME: dict[str, Any] = {
    "name": "acme",
    "roles": [
        {"name": "engineers"},
        {"name": "on-call"},
        {"name": "incident-commanders"},
        {"name": "sec-leads"},
        {
            "name": "deployers",
            "permissions": ["manage_messages", "attach_files", "send_messages", "view_channel"],
        },
        {"name": "webhook-manager", "permissions": ["manage_webhooks", "view_channel", "send_messages"]},
        {"name": "emergency", "permissions": ["administrator"]},
    ],
    "members": [
        {"name": "alice", "roles": ["engineers"]},
        {"name": "bob", "roles": ["sec-leads"]},
        {"name": "carol", "roles": ["sec-leads"]},
        {"name": "dave", "roles": ["engineers", "on-call"]},
        {"name": "erin"},
        {"name": "ci-bot", "bot": True, "roles": ["engineers"]},
    ],
    "channels": [
        {"name": "approvals"},
        {"name": "governance"},
        {"name": "incident", "private": True},
    ],
}


def build_guild(sb: SandboxDiscord, spec: Mapping[str, Any]) -> SGuild:
    """Create a guild from a plain description (the scenario format's [[guild]] table)."""
    known = {"name", "bot_permissions", "roles", "members", "channels"}
    unknown = set(spec) - known
    if unknown:
        raise SandboxError(
            f"guild {spec.get('name')!r}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}"
        )
    guild = sb.create_guild(spec["name"], bot_permissions=spec.get("bot_permissions"))
    for role in spec.get("roles", []):
        # Each new role goes just above @everyone and pushes earlier ones up: list bottom to top.
        guild.create_role(
            role["name"],
            role.get("permissions", []),
            position=role.get("position", 1),
            managed=role.get("managed", False),
        )
    if spec.get("roles"):
        _order_roles(guild, [r["name"] for r in spec["roles"]])
    for member in spec.get("members", []):
        guild.add_member(
            member["name"],
            roles=member.get("roles", []),
            bot=member.get("bot", False),
            dms_open=member.get("dms_open", True),
        )
    for channel in spec.get("channels", []):
        overwrites = None
        if channel.get("private"):
            # Hidden from @everyone; Warden's own role is let in, as an admin adding it would.
            overwrites = {
                guild.everyone: ([], ["view_channel"]),
                _bot_role(guild): (["view_channel", "send_messages", "manage_roles"], []),
            }
        guild.create_channel(channel["name"], overwrites=overwrites)
    return guild


def _bot_role(guild: SGuild) -> Any:
    return next(r for r in guild.roles if r.managed and getattr(r, "bot_id", None))


def _order_roles(guild: SGuild, bottom_to_top: list[str]) -> None:
    """Positions 1..n for the listed roles in order, the bot's managed role above them."""
    for i, name in enumerate(bottom_to_top, start=1):
        guild.role(name).position = i
    _bot_role(guild).position = len(bottom_to_top) + 1


def sandbox_tuning(scheduler_seconds: float | None = None, **knobs: Any) -> Tuning:
    """The bot's knobs in a sandbox world; ``knobs`` override any ``Tuning`` field."""
    # By default the world drives sweeps explicitly; scheduler_seconds runs the real scheduler.
    scheduled = Tuning(
        run_scheduler=scheduler_seconds is not None,
        sweep_seconds=scheduler_seconds or 10.0,
        narrative_seconds=scheduler_seconds or 2.0,
        guild_ready_timeout=0.05,  # the sandbox sends every GUILD_CREATE at once
    )
    return dataclasses.replace(scheduled, **knobs)


class SandboxWorld:
    """A sandbox, its guilds, and the real bot connected to it, with virtual time."""

    def __init__(
        self,
        policy: Policy,
        *,
        database_url: str,
        clock: ManualClock | None = None,
        signer: Signer | None = None,
        scheduler_seconds: float | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        self.policy = policy
        self.database_url = database_url
        self.clock = clock or ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), frozen=True)
        self.signer = signer or Signer.generate()
        self.scheduler_seconds = scheduler_seconds
        self.tuning = tuning or sandbox_tuning(scheduler_seconds)
        self.sb = SandboxDiscord(clock=self.clock)
        self.bot: Any = None
        self._engine: Any = None
        self._dead_engine: Any = None
        self._task: asyncio.Task[None] | None = None
        self.guilds: dict[str, SGuild] = {}

    async def __aenter__(self) -> SandboxWorld:
        await self.sb.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add_guild(self, spec: Mapping[str, Any]) -> SGuild:
        guild = build_guild(self.sb, spec)
        self.guilds[guild.name] = guild
        return guild

    @property
    def guild(self) -> SGuild:
        """The only (or first) guild."""
        return next(iter(self.guilds.values()))

    async def start_bot(self, timeout: float = 10.0) -> Any:
        if self.bot is not None:
            raise SandboxError("the bot is already running")
        self.sb.point_discord_here()
        if self._engine is None:
            self._engine = create_engine(self.database_url)
            await upgrade_to_head(self._engine)
        bot = build_bot(
            policy=self.policy,
            clock=self.clock,
            session_factory=create_session_factory(self._engine),
            signer=self.signer,
            tuning=self.tuning,
        )
        self.bot = bot
        self.sb.gateway.ready.clear()
        self._task = asyncio.create_task(bot.start(self.sb.token), name="warden-bot")
        try:
            await asyncio.wait_for(self._until_caught_up(bot), timeout)
        except TimeoutError:
            if self._task.done() and self._task.exception():
                raise SandboxError(f"the bot failed to start: {self._task.exception()!r}") from None
            raise SandboxError(f"the bot did not become ready within {timeout}s") from None
        return bot

    async def _until_caught_up(self, bot: Any) -> None:
        await bot.wait_until_ready()
        await bot.caught_up.wait()

    async def stop_bot(self) -> None:
        if self.bot is None:
            return
        await self.bot.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        self.bot = None
        self._task = None

    async def restart_bot(self) -> Any:
        await self.stop_bot()
        return await self.start_bot()

    async def eventually(self, predicate: Any, timeout: float = 3.0, what: str = "condition") -> None:
        """Wait until ``predicate()`` is true (gateway events reach the bot asynchronously)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise SandboxError(f"{what} did not become true within {timeout}s")
            await asyncio.sleep(0.01)

    async def settle(self) -> None:
        """Let posted work finish: deliver pending narratives."""
        if self.bot is not None:
            await self.bot.jobs.deliver_narratives()

    async def run_due(self) -> Any:
        return await self.bot.jobs.run_due() if self.bot is not None else None

    async def advance(self, delta: dt.timedelta) -> Any:
        """Move virtual time, then let the bot act on whatever fell due (as its scheduler would)."""
        self.clock.advance(delta)
        return await self.run_due()

    async def database_down(self) -> None:
        """Fault injection: the bot's database stops answering (connections are refused)."""
        assert self.bot is not None
        if self._dead_engine is None:
            # Port 1 on loopback refuses at once: a real connection failure, not a mock.
            self._dead_engine = create_engine(
                "postgresql+asyncpg://warden@127.0.0.1:1/unreachable", connect_args={"timeout": 2}
            )
        self.bot.session_factory.configure(bind=self._dead_engine)

    async def database_up(self) -> None:
        assert self.bot is not None and self._engine is not None
        self.bot.session_factory.configure(bind=self._engine)

    async def ledger_verifies(self) -> tuple[bool, list[str]]:
        assert self._engine is not None
        async with create_session_factory(self._engine)() as session:
            report = await verify_chain(session, self.signer.public_key)
        return report.ok, list(report.problems)

    async def close(self) -> None:
        await self.stop_bot()
        for engine in (self._engine, self._dead_engine):
            if engine is not None:
                await engine.dispose()
        self._engine = self._dead_engine = None
        await self.sb.close()
