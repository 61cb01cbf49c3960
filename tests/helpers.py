"""What tests share: paths, databases, the `warden` subprocess, ledger rows, sandbox flows, report
builders, a tiny real discord.py bot, the audit room's fakes, offline discord.py guilds, the
fakes the request and approval service tests use, and the hostile input of the property tests.

Test modules import shared code from here (or get it from a conftest fixture), never from another
test module: tests/test_architecture.py checks it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import datetime as dt
import html
import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import discord
import pytest
from discord import app_commands
from discord.state import ConnectionState
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bot.approvals.service import ApprovalService
from bot.audit.actions import RevertAction
from bot.audit.decision import AuditDecision, BurstSummary
from bot.clock import ManualClock
from bot.controls import ControlMap
from bot.db.migrate import upgrade_to_head
from bot.db.models import AccessRequest, Grant, GrantStatus, GuildPin, LedgerEntry, NarrativeOutbox, Vote
from bot.db.session import create_engine
from bot.decisions.service import DecisionService
from bot.discord_io.ops import GrantTarget, PriorState
from bot.grants.service import GrantService
from bot.ledger import Signer, append_entry
from bot.policy import GuildDirectory, Policy, load_policy, parse_policy, permissions_from_names, pin_key
from bot.requests.service import RequestService
from bot.requests.sweeps import PendingSweeps
from bot.services.base import Core
from bot.services.errors import WardenError
from sandbox import SandboxDiscord
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
# The moment every test's clock starts (tests/conftest.py's `clock`, the ledger and report tests).
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


# ======================================================================= databases

PG_URL = os.environ.get("WARDEN_TEST_DATABASE_URL")
PG_SKIP_REASON = (
    "PostgreSQL tests need WARDEN_TEST_DATABASE_URL "
    "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test); .ci/run sets it when a server answers"
)


async def create_pg_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database on the test server: (its URL, its name)."""
    assert PG_URL
    base = make_url(PG_URL)
    name = f"warden_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False), name


async def drop_pg_database(name: str) -> None:
    admin = create_async_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class MigratedDatabases:
    """Fresh databases already migrated to head, cheaply: one migration per backend and session.

    Migrating a new database per test cost ~0.1 to 0.8 s on SQLite and ~1 s on PostgreSQL, and creating
    and dropping a PostgreSQL database another 1 to 3 s (both measured on the 2-core CI machine under
    load). Here the first request per backend migrates a template (so every run still exercises the
    migrations, from empty, on both backends); each test then gets a copy: SQLite copies the file,
    PostgreSQL runs `CREATE DATABASE … TEMPLATE`. The PostgreSQL copies are made one ahead and dropped
    by a background thread with its own event loop, so that server-side disk work overlaps the tests
    instead of adding to them. `close()` (end of session) waits for the drops and removes the template.
    """

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._sqlite_template: Path | None = None
        self._copies = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pg_template: str | None = None
        self._next: concurrent.futures.Future[str] | None = None
        self._drops: list[concurrent.futures.Future[None]] = []

    async def sqlite(self) -> str:
        if self._sqlite_template is None:
            template = self._workdir / "template.db"
            engine = create_engine(sqlite_url(template))
            try:
                await upgrade_to_head(engine)
            finally:
                await engine.dispose()
            assert not template.with_name(template.name + "-wal").exists(), (
                "the template's WAL was not checkpointed"
            )
            self._sqlite_template = template
        copy_path = self._workdir / f"warden-{next(self._copies)}.db"
        shutil.copyfile(self._sqlite_template, copy_path)
        return sqlite_url(copy_path)

    # ------------------------------------------------------------------ PostgreSQL
    def _in_background(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="test-databases", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    async def _admin(self, sql: str) -> None:
        assert PG_URL
        admin = create_async_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await admin.dispose()

    async def _copy(self) -> str:
        if self._pg_template is None:
            url, name = await create_pg_database()
            engine = create_engine(url)
            try:
                await upgrade_to_head(engine)
            finally:
                await engine.dispose()
            self._pg_template = name
        name = f"warden_test_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"')
        return name

    async def postgres(self) -> tuple[str, str]:
        """(URL, name) of a new migrated PostgreSQL database; give the name back with `release`."""
        assert PG_URL
        ready = self._next if self._next is not None else self._in_background(self._copy())
        name = await asyncio.wrap_future(ready)
        self._next = self._in_background(self._copy())  # the next test's, made while this one runs
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False), name

    def release(self, name: str) -> None:
        self._drops.append(self._in_background(drop_pg_database(name)))

    def close(self) -> None:
        if self._loop is None:
            return
        if self._next is not None:
            self._drops.append(self._in_background(drop_pg_database(self._next.result(timeout=120))))
        for drop in self._drops:
            drop.result(timeout=120)
        if self._pg_template is not None:
            self._in_background(drop_pg_database(self._pg_template)).result(timeout=120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._loop.close()


# ======================================================================= the `warden` command

EXAMPLE = REPO / "config.example.toml"
SECRET = "MTIzNDU2.cli-test-secret-token.DO-NOT-PRINT"
SANDBOX_TOKEN = "sandbox-cli-secret-token-7f3a9c"


def example_policy_with(tmp_path: Path, old: str, new: str) -> Policy:
    """config.example.toml with one setting changed (a test module overrides the ``policy`` fixture)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_policy(path)


def warden_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def warden(cwd: Path, *args: str, timeout: float = 60, **env: str) -> Result:
    """`python -m bot ARGS` as an operator runs it; its output never shows a token."""
    proc = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=warden_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    assert SECRET not in result.text and SANDBOX_TOKEN not in result.text
    return result


# ======================================================================= the ledger


async def append_n(
    session_factory: async_sessionmaker[AsyncSession], signer: Signer, n: int, start: int = 0
) -> list[LedgerEntry]:
    """Append n signed entries, one second apart from T0."""
    entries = []
    async with session_factory() as session, session.begin():
        for i in range(start, start + n):
            entries.append(
                await append_entry(
                    session,
                    signer,
                    created_at=T0 + dt.timedelta(seconds=i, microseconds=i),
                    outcome="granted",
                    rule=f"scope:deploy#{i}",
                    reason=f"Approved by quorum ({i}).",
                    proof={"subject_id": 10**17 + i, "roles": [1, 2], "at": T0, "n": i, "note": "é ✓"},
                    controls=["SOC2:CC6.2"],
                    guild_id=900,
                    actor_id=42,
                    request_id=i,
                    grant_id=i,
                )
            )
    return entries


# ======================================================================= flows through the sandbox


async def settled(world: SandboxWorld) -> None:
    """Let the bot decide every audit entry it heard, perform its reverts and post its narratives."""
    await world.bot.services.audit.drain()
    await world.settle()


async def entries(world: SandboxWorld, **where: Any) -> list[LedgerEntry]:
    """The ledger's entries in order, those whose columns equal ``where``'s values."""
    async with world.bot.session_factory() as s:
        q = select(LedgerEntry).order_by(LedgerEntry.id)
        for key, value in where.items():
            q = q.where(getattr(LedgerEntry, key) == value)
        return list(await s.scalars(q))


def governance(world: SandboxWorld) -> list[str]:
    """The texts posted to the governance channel."""
    return [m.text for m in world.sb.messages(world.guild.channel("governance"))]


def card_in(world: SandboxWorld, request_id: int) -> Any:
    """The approval card of a request in the approvals channel."""
    msgs = [m for m in world.sb.messages(world.guild.channel("approvals")) if f"#{request_id}" in m.text]
    assert msgs, f"no approval card for request #{request_id}"
    return msgs[0]


async def request(
    world: SandboxWorld,
    who: str,
    scope: str = "deploy",
    duration: str = "2h",
    reason: str = "release 4.2",
    **kw: Any,
) -> Any:
    """`/jit request` typed by a member of the sandbox guild."""
    return await world.sb.slash(
        world.guild,
        world.guild.member(who),
        "jit request",
        scope=scope,
        duration=duration,
        reason=reason,
        **kw,
    )


# ======================================================================= the compliance report

HOSTILE_REASON = "<script>alert('x')</script> release 4.2 & \"hotfix\""


@dataclass
class Populated:
    world: SandboxWorld
    signer: Signer
    key_path: Path
    database_url: str
    names: dict[str, int]


async def populate(world: SandboxWorld) -> None:
    """Two days of decisions: quorum approvals, a denial, an auto-approval, a revocation,
    break-glass with its review, and expiries, each made by clicking in the sandbox."""
    g, sb = world.guild, world.sb
    alice, bob, carol, dave = (g.member(n) for n in ("alice", "bob", "carol", "dave"))

    # Request #1: approved by bob after 10 minutes and carol after 25; expires two hours later.
    await sb.slash(g, alice, "jit request", scope="deploy", duration="2h", reason=HOSTILE_REASON)
    await world.advance(dt.timedelta(minutes=10))
    await sb.click(bob, card_in(world, 1), "Approve")
    await world.advance(dt.timedelta(minutes=15))
    await sb.click(carol, card_in(world, 1), "Approve")
    assert alice.has_role("deployers")
    await world.advance(dt.timedelta(hours=2, minutes=1))
    assert not alice.has_role("deployers")

    # Request #2: denied by bob, with a reason that is user text too.
    await sb.slash(g, alice, "jit request", scope="deploy", duration="1h", reason="again")
    modal = await sb.click(bob, card_in(world, 2), "Deny")
    await sb.submit_modal(bob, modal, reason="no change ticket <b>yet</b>")

    # Next day: dave is auto-approved (on-call, 30m), then bob revokes it early.
    await world.advance(dt.timedelta(days=1))
    await sb.slash(g, dave, "jit request", scope="deploy", duration="30m", reason="restart workers")
    out = await sb.slash(g, bob, "jit revoke", grant=2, reason="done early")
    assert "revoked" in out.text

    # Break-glass by dave, reviewed by bob 40 minutes later.
    out = await sb.slash(g, dave, "jit breakglass", scope="breakglass-admin", reason="prod down")
    assert dave.has_role("emergency")
    await world.advance(dt.timedelta(minutes=40))
    review = await sb.wait_for_message(g.channel("approvals"), contains="Break-glass review")
    await sb.click(bob, review, "Acknowledge review")

    # Request #5: approved after an hour, still active when the report is written.
    await sb.slash(g, alice, "jit request", scope="deploy", duration="3h", reason="release 4.3")
    await world.advance(dt.timedelta(hours=1))
    await sb.click(carol, card_in(world, 5), "Approve")
    await sb.click(bob, card_in(world, 5), "Approve")
    await world.settle()
    ok, problems = await world.ledger_verifies()
    assert ok, problems


@contextlib.asynccontextmanager
async def populated_world(database_url: str, tmp_path: Path) -> AsyncIterator[Populated]:
    """The real bot in the sandbox, after `populate`, with its signer and key file."""
    key_path = tmp_path / "signing.pem"
    signer = Signer.from_file(key_path, create=True)
    clock = ManualClock(T0, frozen=True)
    async with SandboxWorld(
        load_policy(EXAMPLE_CONFIG), database_url=database_url, clock=clock, signer=signer
    ) as world:
        world.add_guild(copy.deepcopy(ACME))
        await world.start_bot()
        await populate(world)
        names = {n: world.guild.member(n).id for n in ("alice", "bob", "carol", "dave")}
        yield Populated(world, signer, key_path, database_url, names)
        world.sb.conformance.assert_ok()


def section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start : page.index("</section>", start)]


def rows(page: str, table_id: str) -> list[list[str]]:
    """The table's rows as lists of cell texts (unescaped)."""
    start = page.index(f'<table class="sortable" id="{table_id}">')
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", body)
    ]


# ======================================================================= a tiny real discord.py bot (sandbox tests)

SCOPES = ["deploy", "deploy-prod", "db-read", "billing"]


class DenyModal(discord.ui.Modal, title="Deny request"):
    reason = discord.ui.TextInput(label="Reason", custom_id="reason", min_length=2)

    def __init__(self, bot: TinyBot) -> None:
        super().__init__(custom_id="deny-modal")
        self.bot = bot

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.bot.seen["modal_reason"] = self.reason.value
        await interaction.response.send_message(f"Denied: {self.reason.value}", ephemeral=True)


class ApprovalView(discord.ui.View):
    def __init__(self, bot: TinyBot) -> None:
        super().__init__(timeout=None)
        self.bot = bot

    @discord.ui.button(label="Approve", style=discord.ButtonStyle.success, custom_id="card:approve")
    async def approve(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.bot.seen["approved_by"] = interaction.user.id
        await interaction.response.edit_message(content=f"Approved by {interaction.user.name}", view=None)

    @discord.ui.button(label="Deny", style=discord.ButtonStyle.danger, custom_id="card:deny")
    async def deny(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(DenyModal(self.bot))

    @discord.ui.button(label="Later", style=discord.ButtonStyle.secondary, custom_id="card:later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        await asyncio.sleep(0.05)
        await interaction.edit_original_response(content="Snoozed")


class TinyBot:
    def __init__(self, sb: SandboxDiscord, *, intents: discord.Intents | None = None) -> None:
        self.sb = sb
        if intents is None:
            intents = discord.Intents.default()
            intents.members = True
        self.client = discord.Client(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self.client)

        async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
            return None  # discord.py waits 5 s before a re-IDENTIFY (Discord's 1-per-5s limit)

        self.client.before_identify_hook = no_identify_delay  # type: ignore[method-assign]
        self.seen: dict[str, Any] = {}
        self.events: list[tuple[str, Any]] = []
        self.resumed = asyncio.Event()
        self.member_updates: asyncio.Queue = asyncio.Queue()
        self.audit_entries: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._register()

    def _register(self) -> None:
        tree, bot, client = self.tree, self, self.client
        jit = app_commands.Group(name="jit", description="Just-in-time access")

        @jit.command(name="request", description="Request a scope")
        @app_commands.describe(scope="what", duration="how long", reason="why")
        @app_commands.rename(for_="for")
        async def request(
            interaction: discord.Interaction,
            scope: str,
            duration: str,
            reason: str,
            for_: discord.Member | None = None,
        ) -> None:
            subject = for_ or interaction.user
            bot.seen["request"] = (scope, duration, reason, subject.id)
            await interaction.response.send_message(
                f"Requested {scope} for {subject.name} ({duration}): {reason}", ephemeral=True
            )

        @request.autocomplete("scope")
        async def scope_ac(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=s, value=s) for s in SCOPES if s.startswith(current)]

        tree.add_command(jit)

        @tree.command(name="ping", description="Ping with an approval card")
        async def ping(interaction: discord.Interaction) -> None:
            embed = discord.Embed(title="Approval needed", description="deploy for alice")
            embed.add_field(name="Quorum", value="1")
            await interaction.response.send_message("Pong", embed=embed, view=ApprovalView(bot))

        @tree.command(name="dmme", description="DM me")
        async def dmme(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                await interaction.user.send(f"DM: {text}")
            except discord.Forbidden as e:
                await interaction.followup.send(f"cannot DM ({e.code})", ephemeral=True)
                return
            await interaction.followup.send("sent", ephemeral=True)

        @tree.command(name="twice", description="Answer twice")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            interaction.response._response_type = None  # bypass discord.py's local guard: ask Discord
            try:
                await interaction.response.send_message("second")
            except discord.HTTPException as e:
                bot.seen["twice_error"] = (e.status, e.code)

        @tree.command(name="slow", description="Answer late")
        async def slow(interaction: discord.Interaction, seconds: float) -> None:
            await asyncio.sleep(seconds)
            try:
                await interaction.response.send_message("late")
            except discord.HTTPException as e:
                bot.seen["slow_error"] = (e.status, e.code)

        @tree.command(name="count", description="Integer + bool + role options")
        async def count(
            interaction: discord.Interaction,
            n: int,
            loud: bool,
            role: discord.Role,
            where: discord.TextChannel,
        ) -> None:
            bot.seen["count"] = (n, loud, role.id, where.id)
            await interaction.response.send_message(f"{n} {loud} {role.name} {where.name}")

        @client.event
        async def on_ready() -> None:
            client.add_view(ApprovalView(bot))

        @client.event
        async def on_resumed() -> None:
            bot.resumed.set()

        @client.event
        async def on_member_update(before: discord.Member, after: discord.Member) -> None:
            bot.member_updates.put_nowait((before, after))

        @client.event
        async def on_audit_log_entry_create(entry: discord.AuditLogEntry) -> None:
            bot.audit_entries.put_nowait(entry)

    async def start(self, *, sync: bool = True) -> None:
        self._task = asyncio.create_task(self.client.start(self.sb.token))
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()
        assert ready in done, "client did not become ready"
        if sync:
            await self.tree.sync()

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)


# ======================================================================= the audit room's fakes

GUILD = 1000
WARDEN = 42
ADMIN = 501
MOD_ROLE = 601  # the admins role
ALICE = 701
BOB = 702
BOT = 801
BOT_MANAGED_ROLE = 901
JIT_ROLE = 611  # "deployers", granted by scope deploy
PLAIN_ROLE = 612
BROAD_ROLE = 613
PRIVATE_CHANNEL = 3001
PUBLIC_CHANNEL = 3002

_ids = itertools.count(1)
# Audit-log entry ids are snowflakes: time in the top bits. 2026-03-02 09:00 UTC ≈ this.
BASE_ID = (1772442000000 - 1420070400000) << 22


def entry_id(n: int | None = None) -> int:
    return BASE_ID + ((n if n is not None else next(_ids)) << 22)


def bits(*names: str) -> str:
    return str(permissions_from_names(names).value)


POLICY_DATA: dict[str, Any] = {
    "guild": {
        str(GUILD): {
            "approvals_channel": "approvals",
            "governance_channel": "governance",
            "admins": ["sec-admins", f"user:{ADMIN}"],
            "broad_roles": ["members"],
        }
    },
    "scope": {
        "deploy": {
            "kind": "role",
            "role": "deployers",
            "max_duration": "8h",
            "approvers": ["sec-leads"],
            "requesters": ["engineers"],
            "permission_ceiling": ["manage_messages", "attach_files", "send_messages"],
        }
    },
}


def audit_policy(**extra: Any) -> Policy:
    return parse_policy({**POLICY_DATA, **extra})


@dataclass
class FakeFacts:
    roles: dict[str, int] = field(
        default_factory=lambda: {
            "sec-admins": MOD_ROLE,
            "deployers": JIT_ROLE,
            "members": BROAD_ROLE,
            "plain": PLAIN_ROLE,
        }
    )
    role_perms: dict[int, int] = field(
        default_factory=lambda: {
            JIT_ROLE: int(bits("send_messages")),
            PLAIN_ROLE: 0,
            BOT_MANAGED_ROLE: int(bits("administrator")),
        }
    )
    member_roles: dict[int, frozenset[int]] = field(
        default_factory=lambda: {
            ADMIN: frozenset(),
            BOB: frozenset({MOD_ROLE}),
            ALICE: frozenset({PLAIN_ROLE}),
        }
    )
    bots: set[int] = field(default_factory=lambda: {BOT, WARDEN})
    bot_perms: dict[int, int] = field(default_factory=lambda: {BOT: int(bits("administrator"))})
    private_channels: set[int] = field(default_factory=lambda: {PRIVATE_CHANNEL})

    def role_id(self, guild_id: int, ref: str | int) -> int | None:
        return ref if isinstance(ref, int) else self.roles.get(ref)

    def role_permissions(self, guild_id: int, role_id: int) -> int | None:
        return self.role_perms.get(role_id)

    def member_role_ids(self, guild_id: int, member_id: int) -> frozenset[int] | None:
        return self.member_roles.get(member_id)

    def member_permissions(self, guild_id: int, member_id: int) -> int | None:
        return self.bot_perms.get(member_id)

    def is_bot(self, guild_id: int, user_id: int) -> bool | None:
        return user_id in self.bots

    def managed_role_id(self, guild_id: int, bot_id: int) -> int | None:
        return BOT_MANAGED_ROLE if bot_id == BOT else None

    def channel_is_private(self, guild_id: int, channel_id: int) -> bool | None:
        if channel_id in (PRIVATE_CHANNEL, PUBLIC_CHANNEL):
            return channel_id in self.private_channels
        return None

    def owner_id(self, guild_id: int) -> int | None:
        return None

    def name_of(self, guild_id: int, target_id: int) -> str | None:
        if target_id == guild_id:
            return "acme"
        return next((n for n, i in self.roles.items() if i == target_id), None)


@dataclass
class FakeGrants:
    active: dict[tuple[int, str, int], int] = field(default_factory=dict)  # (member, kind, target) → grant

    async def sanctioning_grant(self, guild_id: int, member_id: int, kind: str, target_id: int) -> int | None:
        return self.active.get((member_id, kind, target_id))

    async def sanctioning_grants(self, guild_id: int, keys: Any) -> dict[Any, int]:
        return {key: self.active[key] for key in keys if key in self.active}


@dataclass
class FakeRecorder:
    decisions: list[AuditDecision] = field(default_factory=list)
    summaries: list[BurstSummary] = field(default_factory=list)

    async def record(self, session: Any, decision: AuditDecision) -> int:
        self.decisions.append(decision)
        return len(self.decisions)

    async def record_summary(self, session: Any, summary: BurstSummary) -> None:
        self.summaries.append(summary)


@dataclass
class FakeReverter:
    performed: list[tuple[RevertAction, str]] = field(default_factory=list)
    refuse: Exception | None = None

    async def perform(self, action: RevertAction, reason: str) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.performed.append((action, reason))


def payload(
    action_type: int,
    *,
    actor: int | None = ALICE,
    target: int | None = None,
    changes: list[dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    reason: str | None = None,
    n: int | None = None,
    guild: int | None = GUILD,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": str(entry_id(n)),
        "action_type": action_type,
        "user_id": None if actor is None else str(actor),
        "target_id": None if target is None else str(target),
    }
    if guild is not None:
        p["guild_id"] = str(guild)
    if changes is not None:
        p["changes"] = changes
    if options is not None:
        p["options"] = options
    if reason is not None:
        p["reason"] = reason
    return p


def role_added(member: int, role: int, **kw: Any) -> dict[str, Any]:
    return payload(
        25, target=member, changes=[{"key": "$add", "new_value": [{"id": str(role), "name": "r"}]}], **kw
    )


def role_removed(member: int, role: int, **kw: Any) -> dict[str, Any]:
    return payload(
        25, target=member, changes=[{"key": "$remove", "new_value": [{"id": str(role), "name": "r"}]}], **kw
    )


def role_perms(role: int, before: str, after: str, **kw: Any) -> dict[str, Any]:
    return payload(
        31, target=role, changes=[{"key": "permissions", "old_value": before, "new_value": after}], **kw
    )


def overwrite(
    channel: int, target: int, kind: str, allow: str, *, before: str | None = None, **kw: Any
) -> dict[str, Any]:
    action = 13 if before is None else 14
    change: dict[str, Any] = {"key": "allow", "new_value": allow}
    if before is not None:
        change["old_value"] = before
    return payload(action, target=channel, changes=[change], options={"id": str(target), "type": kind}, **kw)


def webhook(channel: int, hook: int = 4001, **kw: Any) -> dict[str, Any]:
    return payload(
        50,
        target=hook,
        changes=[{"key": "channel_id", "new_value": str(channel)}, {"key": "type", "new_value": 1}],
        **kw,
    )


# ======================================================================= offline discord.py guilds


def offline_guild(
    payload: dict[str, Any], http: discord.http.HTTPClient | None = None, *, self_id: int | None = None
) -> discord.Guild:
    """A discord.py Guild built from a GUILD_CREATE payload, with no connection: real Member,
    Role and permission objects for code that reads them. ``self_id`` makes that member ``guild.me``."""
    state = ConnectionState(
        dispatch=lambda *a, **k: None,
        handlers={},
        hooks={},
        http=http,  # type: ignore[arg-type]
        intents=discord.Intents.all(),
    )
    if self_id is not None:
        me = next(m["user"] for m in payload["members"] if int(m["user"]["id"]) == self_id)
        state.user = discord.ClientUser(state=state, data=me)
    return discord.Guild(data=payload, state=state)  # type: ignore[arg-type]


def _overwrite(target: int, kind: int, allow: int = 0, deny: int = 0) -> dict[str, Any]:
    return {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}


class InventoryGuild:
    """A discord.py guild built from raw gateway payloads: roles, channels with role and member overwrites.

    A namespace (``from tests.helpers import InventoryGuild as fx``): its ids would clash with the audit fakes'.
    """

    P = discord.Permissions
    GUILD_ID = 1000
    OWNER_ID = 1
    EVERYONE = GUILD_ID

    # roles
    MOD, DEV, MUTED, ADMIN, HOOKS = 2001, 2002, 2003, 2004, 2005
    # members (bots mostly: the inventory's subjects)
    ALICE_BOT, BOB_BOT, ADMIN_BOT, PLAIN_BOT, TIMED_OUT_BOT = 3001, 3002, 3003, 3004, 3005
    # channels
    GENERAL, PRIVATE, ANNOUNCE, VOICE_CH, CATEGORY, READONLY = 4001, 4002, 4003, 4004, 4005, 4006

    EVERYONE_PERMS = P(
        view_channel=True, send_messages=True, read_message_history=True, connect=True, speak=True
    ).value
    ROLE_PERMS = {
        EVERYONE: EVERYONE_PERMS,
        MOD: P(kick_members=True, manage_messages=True, mention_everyone=True).value,
        DEV: P(attach_files=True, embed_links=True, manage_webhooks=True).value,
        MUTED: 0,
        ADMIN: P(administrator=True).value,
        HOOKS: P(manage_webhooks=True, manage_roles=True).value,
    }
    MEMBER_ROLES = {
        ALICE_BOT: [MOD, DEV],
        BOB_BOT: [DEV, MUTED],
        ADMIN_BOT: [ADMIN],
        PLAIN_BOT: [],
        TIMED_OUT_BOT: [MOD],
        OWNER_ID: [],
    }

    ROLE, MEMBER = 0, 1
    CHANNELS: list[dict[str, Any]] = [
        {"id": GENERAL, "type": 0, "overwrites": []},
        {
            # private: @everyone cannot see; DEV may; MUTED denied send; Bob's own overwrite gives send back.
            "id": PRIVATE,
            "type": 0,
            "overwrites": [
                _overwrite(EVERYONE, ROLE, deny=P(view_channel=True).value),
                _overwrite(DEV, ROLE, allow=P(view_channel=True, mention_everyone=True).value),
                _overwrite(MUTED, ROLE, deny=P(send_messages=True, attach_files=True).value),
                _overwrite(BOB_BOT, MEMBER, allow=P(send_messages=True).value),
                _overwrite(ALICE_BOT, MEMBER, deny=P(manage_messages=True).value),
            ],
        },
        {
            # announcements: nobody sends but MOD; a role deny and another role's allow of the same bit → allow wins.
            "id": ANNOUNCE,
            "type": 5,
            "overwrites": [
                _overwrite(EVERYONE, ROLE, deny=P(send_messages=True).value),
                _overwrite(MOD, ROLE, allow=P(send_messages=True).value),
                _overwrite(DEV, ROLE, deny=P(send_messages=True, embed_links=True).value),
                _overwrite(ADMIN_BOT, MEMBER, deny=P(view_channel=True).value),
            ],
        },
        {
            "id": VOICE_CH,
            "type": 2,
            "overwrites": [
                _overwrite(DEV, ROLE, deny=P(connect=True).value, allow=P(manage_channels=True).value),
                _overwrite(MOD, ROLE, allow=P(move_members=True, mute_members=True).value),
            ],
        },
        {
            "id": CATEGORY,
            "type": 4,
            "overwrites": [_overwrite(EVERYONE, ROLE, deny=P(view_channel=True).value)],
        },
        {
            # read-only: send denied for everyone, and Alice's member overwrite denies view.
            "id": READONLY,
            "type": 0,
            "overwrites": [
                _overwrite(EVERYONE, ROLE, deny=P(send_messages=True).value),
                _overwrite(HOOKS, ROLE, allow=P(manage_webhooks=True).value),
                _overwrite(ALICE_BOT, MEMBER, deny=P(view_channel=True).value),
            ],
        },
    ]

    @classmethod
    def guild_payload(cls) -> dict[str, Any]:
        roles = [
            {
                "id": str(rid),
                "name": "@everyone" if rid == cls.EVERYONE else f"role{rid}",
                "permissions": str(value),
                "position": i,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
            }
            for i, (rid, value) in enumerate(cls.ROLE_PERMS.items())
        ]
        channels = [
            {
                "id": str(c["id"]),
                "type": c["type"],
                "name": f"ch{c['id']}",
                "position": i,
                "permission_overwrites": c["overwrites"],
                **({"bitrate": 64000, "user_limit": 0} if c["type"] == 2 else {}),
            }
            for i, c in enumerate(cls.CHANNELS)
        ]
        timeout_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        members = [
            {
                "user": {
                    "id": str(mid),
                    "username": f"m{mid}",
                    "discriminator": "0",
                    "avatar": None,
                    "bot": mid != cls.OWNER_ID,
                },
                "roles": [str(r) for r in role_ids],
                "joined_at": "2026-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                **({"communication_disabled_until": timeout_until} if mid == cls.TIMED_OUT_BOT else {}),
            }
            for mid, role_ids in cls.MEMBER_ROLES.items()
        ]
        return {
            "id": str(cls.GUILD_ID),
            "name": "fixture",
            "owner_id": str(cls.OWNER_ID),
            "roles": roles,
            "channels": channels,
            "members": members,
            "member_count": len(members),
        }

    @classmethod
    def build_guild(cls, http: discord.http.HTTPClient) -> discord.Guild:
        return offline_guild(cls.guild_payload(), http)


# ======================================================================= rule services without Discord
#
# The request and approval services reach Discord only through small Protocols (notifier, grant
# operations); these fakes satisfy them, and the members the services read are real discord.py
# objects built offline from gateway payloads. The policy is the documented example
# (config.example.toml); its server `acme` is laid out below.


def _role(rid: int, name: str, position: int, *perms: str, managed: bool = False) -> dict[str, Any]:
    return {
        "id": str(rid),
        "name": name,
        "permissions": str(permissions_from_names(perms).value),
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": managed,
        "mentionable": False,
    }


class OfflineAcme:
    """The example policy's `acme` server, as ids (a namespace: names like ALICE are the audit fakes')."""

    GUILD = 7000
    # roles, bottom to top (Warden's own role is the highest, so every scope's role is below it)
    ENGINEERS, ON_CALL, SEC_LEADS, INCIDENT_COMMANDERS, ADMINS = 7101, 7102, 7103, 7104, 7105
    DEPLOYERS, WEBHOOK_MANAGER, EMERGENCY, WARDEN_ROLE = 7106, 7107, 7108, 7109
    APPROVALS, GOVERNANCE, INCIDENT = 7201, 7202, 7203
    # members: name → (id, roles, is a bot)
    MEMBERS: dict[str, tuple[int, tuple[int, ...], bool]] = {
        "warden": (7300, (WARDEN_ROLE,), True),
        "owner": (7301, (), False),
        "alice": (7311, (ENGINEERS,), False),  # may request deploy
        "bob": (7312, (SEC_LEADS,), False),  # approver
        "carol": (7313, (SEC_LEADS,), False),  # approver
        "dave": (7314, (ENGINEERS, ON_CALL), False),  # auto-approved for deploy ≤ 1h; may break glass
        "erin": (7315, (), False),  # may request nothing but incident-room (@everyone)
        "frank": (7316, (ENGINEERS, DEPLOYERS), False),  # holds deployers outside Warden (standing)
        "sam": (7317, (ENGINEERS, SEC_LEADS), False),  # an approver who also asks
        "ada": (7318, (ENGINEERS, ADMINS), False),  # a server admin (Manage Server)
        "olga": (7319, (ON_CALL, SEC_LEADS), False),  # breaks glass and could review it
        "ci-bot": (7320, (), True),  # a bot: the subject of bot scopes
    }

    @classmethod
    def payload(cls) -> dict[str, Any]:
        roles = [
            _role(cls.GUILD, "@everyone", 0, "view_channel", "send_messages", "read_message_history"),
            _role(cls.ENGINEERS, "engineers", 1),
            _role(cls.ON_CALL, "on-call", 2),
            _role(cls.SEC_LEADS, "sec-leads", 3),
            _role(cls.INCIDENT_COMMANDERS, "incident-commanders", 4),
            _role(cls.ADMINS, "admins", 5, "manage_guild"),
            _role(cls.DEPLOYERS, "deployers", 6, "send_messages", "manage_messages"),
            _role(cls.WEBHOOK_MANAGER, "webhook-manager", 7, "manage_webhooks"),
            _role(cls.EMERGENCY, "emergency", 8, "administrator"),
            _role(
                cls.WARDEN_ROLE, "Warden", 9, "manage_roles", "view_channel", "send_messages", managed=True
            ),
        ]
        channels = [
            {"id": str(cid), "type": 0, "name": name, "position": i, "permission_overwrites": []}
            for i, (cid, name) in enumerate(
                [(cls.APPROVALS, "approvals"), (cls.GOVERNANCE, "governance"), (cls.INCIDENT, "incident")]
            )
        ]
        members = [
            {
                "user": {"id": str(mid), "username": name, "discriminator": "0", "avatar": None, "bot": bot},
                "roles": [str(r) for r in role_ids],
                "joined_at": "2026-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
            for name, (mid, role_ids, bot) in cls.MEMBERS.items()
        ]
        return {
            "id": str(cls.GUILD),
            "name": "acme",
            "owner_id": str(cls.MEMBERS["owner"][0]),
            "roles": roles,
            "channels": channels,
            "members": members,
            "member_count": len(members),
        }

    @classmethod
    def guild(cls) -> discord.Guild:
        return offline_guild(cls.payload(), self_id=cls.MEMBERS["warden"][0])


@dataclass
class Told:
    """Every notifier Protocol of the rule services: records what Warden would post or DM, in order."""

    events: list[tuple[str, int]] = field(default_factory=list)

    def what(self) -> list[str]:
        return [name for name, _ in self.events]

    async def request_created(self, req: Any, scope: Any) -> None:
        self.events.append(("request_created", req.id))

    async def request_decided(self, req: Any, scope: Any) -> None:
        self.events.append(("request_decided", req.id))

    async def request_updated(self, req: Any) -> None:
        self.events.append(("request_updated", req.id))

    async def request_expired(self, req: Any) -> None:
        self.events.append(("request_expired", req.id))

    async def remind_approvers(self, req: Any) -> None:
        self.events.append(("remind_approvers", req.id))

    async def grant_extended(self, grant: Any, req: Any) -> None:
        self.events.append(("grant_extended", grant.id))

    async def refresh_review(self, grant_id: int) -> None:
        self.events.append(("refresh_review", grant_id))

    async def grant_applied(self, grant: Any) -> None:
        self.events.append(("grant_applied", grant.id))

    async def grant_failed(self, grant: Any) -> None:
        self.events.append(("grant_failed", grant.id))

    async def grant_ended(self, grant: Any) -> None:
        self.events.append(("grant_ended", grant.id))

    async def grant_expiring(self, grant: Any) -> None:
        self.events.append(("grant_expiring", grant.id))


@dataclass
class RolesHeld:
    """The grant service's Discord operations, in memory: which member holds which role or overwrite."""

    held: set[tuple[int, int]] = field(default_factory=set)  # (member, role or channel)

    async def prior_state(self, target: GrantTarget) -> PriorState:
        return PriorState(held=(target.subject_id, target.target_id) in self.held)

    async def apply(self, target: GrantTarget, reason: str) -> None:
        self.held.add((target.subject_id, target.target_id))

    async def remove(self, target: GrantTarget, reason: str) -> None:
        if not target.changes_nothing:
            self.held.discard((target.subject_id, target.target_id))

    async def audit_entry_for(self, target: GrantTarget, reason: str) -> str | None:
        return None


@dataclass
class RuleServices:
    """The request, approval, pending and grant services on one database, with Discord faked."""

    guild: discord.Guild
    clock: ManualClock
    sessions: async_sessionmaker[AsyncSession]
    requests: RequestService
    approvals: ApprovalService
    pending: PendingSweeps
    grants: GrantService
    told: Told
    discord: RolesHeld

    def member(self, name: str) -> discord.Member:
        member = self.guild.get_member(OfflineAcme.MEMBERS[name][0])
        assert member is not None, name
        return member

    async def one(self, model: type[T], ident: int) -> T:
        """A row as the database holds it now."""
        async with self.sessions() as session:
            row = await session.get(model, ident)
            assert row is not None, f"no {model.__name__} #{ident}"
            return row

    async def counts(self) -> dict[str, int]:
        """Rows per table that a rule may write: a refusal leaves every count as it was."""
        tables = (AccessRequest, Vote, Grant, LedgerEntry, NarrativeOutbox)
        async with self.sessions() as session:
            return {
                m.__tablename__: int(await session.scalar(select(func.count()).select_from(m)) or 0)
                for m in tables
            }

    async def refused(self, action: Awaitable[Any], kind: type[WardenError], *says: str) -> str:
        """Run an action that must be refused: the refusal is of this kind, its message says each of
        `says`, and nothing at all was written. Returns the message the person sees."""
        before = await self.counts()
        told = len(self.told.events)
        with pytest.raises(kind) as caught:
            await action
        message = caught.value.message
        for text_ in says:
            assert text_ in message, f"{text_!r} not in {message!r}"
        assert await self.counts() == before, f"a refusal wrote rows: {message}"
        assert len(self.told.events) == told, f"a refusal told Discord something: {message}"
        return message


def pin_guild(guilds: GuildDirectory, guild_id: int, guild_name: str) -> None:
    """As the bot does at first sight of this guild: a table with its name is pinned to its id."""
    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    guilds.load_pins(
        GuildPin(key=pin_key(gp), guild_id=gid, guild_name=name, pinned_at=now)
        for gp, gid, name in guilds.first_sight([(guild_id, guild_name)])
    )
    guilds.bind(guild_id, guild_name)


def example_core(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, signer: Signer | None = None
) -> Core:
    """What every rule service is built from, on the example policy (config.example.toml)."""
    return Core(
        guilds=GuildDirectory(load_policy(EXAMPLE_CONFIG)),
        sessions=sessions,
        clock=clock,
        decisions=DecisionService(signer or Signer.generate(), ControlMap.load_default(), clock),
    )


def rule_services(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> RuleServices:
    guild = OfflineAcme.guild()
    core = example_core(sessions, clock)
    pin_guild(core.guilds, guild.id, guild.name)
    told, held = Told(), RolesHeld()
    grants = GrantService(core, ops=held, notifier=told)
    return RuleServices(
        guild=guild,
        clock=clock,
        sessions=sessions,
        requests=RequestService(core, grants=grants, notifier=told),
        approvals=ApprovalService(core, grants=grants, notifier=told),
        pending=PendingSweeps(core, notifier=told),
        grants=grants,
        told=told,
        discord=held,
    )


# ---- the grant service against a fake Discord (apply safety, crash windows) -------------------


class Crash(BaseException):
    """The process dies here: nothing after this point runs (not even error handling)."""


class FakeDiscord:
    """Roles per member as Discord would hold them; apply can be held, failed or crashed."""

    def __init__(self) -> None:
        self.roles: dict[int, set[int]] = {}
        self.calls: list[str] = []
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.apply_error: BaseException | None = None
        self.crash_after_apply = False

    async def prior_state(self, target):
        return PriorState(held=target.target_id in self.roles.get(target.subject_id, set()))

    async def apply(self, target, reason):
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.apply_error is not None:
            if not isinstance(self.apply_error, TimeoutError):
                raise self.apply_error
            # a timeout after Discord made the change: the worst case for "failed"
            self.roles.setdefault(target.subject_id, set()).add(target.target_id)
            raise self.apply_error
        self.calls.append("add")
        self.roles.setdefault(target.subject_id, set()).add(target.target_id)
        if self.crash_after_apply:
            raise Crash()

    async def remove(self, target, reason):
        if target.changes_nothing:
            return
        self.calls.append("remove")
        self.roles.get(target.subject_id, set()).discard(target.target_id)

    async def audit_entry_for(self, target, reason):
        return None

    def holds(self, member: int, role: int) -> bool:
        return role in self.roles.get(member, set())


def grants(factory: async_sessionmaker[AsyncSession], clock: ManualClock, ops: Any) -> GrantService:
    """The grant service on the example policy, Discord faked by `ops`, nobody told anything that matters."""
    return GrantService(example_core(factory, clock), ops=ops, notifier=Told())


async def approved_grant(factory, clock, *, subject: int = 7, role: int = 5, hours: int = 2) -> int:
    async with factory() as s, s.begin():
        g = Grant(
            guild_id=1,
            scope_id="deploy",
            subject_id=subject,
            kind="role",
            target_id=role,
            status=GrantStatus.APPROVED,
            duration_seconds=hours * 3600,
            created_at=clock.now(),
        )
        s.add(g)
        await s.flush()
        return g.id


class Holder:
    def __init__(self, member_id: int) -> None:
        self.id = member_id
        self.guild = type("G", (), {"id": 1})()
        self.roles: list[object] = []

    def __str__(self) -> str:
        return f"member {self.id}"


# ---- property tests (tests/property/): hostile input ------------------------------------------

# Small by default so the suite stays fast; WARDEN_PROPERTY_EXAMPLES=2000 for a longer hunt
# (README.md). Sandbox-driven properties use a quarter of it.
PROPERTY_EXAMPLES = int(os.environ.get("WARDEN_PROPERTY_EXAMPLES", "50"))


def property_settings(max_examples: int = PROPERTY_EXAMPLES) -> settings:
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


# Text that has broken chat bots before: mentions, markdown, masked links, bidi and zero-width
# characters, combining marks, surrogate-free astral characters, NULs, very long runs.
HOSTILE_PIECES = [
    "@everyone",
    "@here",
    "<@&123456789012345678>",
    "<@!123456789012345678>",
    "<#123456789012345678>",
    "[click](https://evil.example)",
    "**bold** __u__ ~~s~~ `code` ```block```",
    "\u202e\u2066\u200b\u200d\ufeff",
    "Z\u0351\u0308\u0337\u0321",
    "\x00\x1b[31m",
    "😀👩‍👩‍👧",
    "\\",
    "'; DROP TABLE requests; --",
    "%s %(x)s {0} {x}",
    "9" * 50 + "m",
    "-1h",
    "1e9d",
    "nan",
    "   ",
]

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(HOSTILE_PIECES),
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=8)), max_size=6).map("".join),
    st.text(min_size=1, max_size=3).map(lambda s: s * 2000),  # huge (Discord allows 6000 per option)
)


def discord_option(text: str) -> str:
    """What Discord delivers for a string option: at most 6000 characters, never empty."""
    return (text or "x")[:6000]


toml_scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(HOSTILE_PIECES),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC))),
    st.dates(),
    st.times(),
)

toml_values: st.SearchStrategy[Any] = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (parsed TOML) with 1 to 4 values set to anything TOML can hold, removed, or added."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        node: dict[str, Any] = data
        while True:  # walk down to some table (or a table in an array of tables)
            children = [k for k, v in node.items() if isinstance(v, dict)]
            children += [
                k for k, v in node.items() if isinstance(v, list) and any(isinstance(x, dict) for x in v)
            ]
            if not children or draw(st.booleans()):
                break
            child = node[draw(st.sampled_from(sorted(children)))]
            node = (
                child
                if isinstance(child, dict)
                else draw(st.sampled_from([x for x in child if isinstance(x, dict)]))
            )
        op = draw(st.sampled_from(["set", "delete", "add"]))
        keys = sorted(node)
        if op == "set" and keys:
            node[draw(st.sampled_from(keys))] = draw(toml_values)
        elif op == "delete" and keys:
            del node[draw(st.sampled_from(keys))]
        else:
            key = draw(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(HOSTILE_PIECES)))
            node[key] = draw(toml_values)
    return data


async def until(read: Any, expected: Any, timeout: float = 3.0) -> None:
    """Gateway events reach the bot asynchronously: wait until ``await read()`` gives ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {got!r}, expected {expected!r}"
        await asyncio.sleep(0.01)
