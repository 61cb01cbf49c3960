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
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import bot.data
from bot.clock import ManualClock
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.ledger import Signer, verify_chain
from bot.policy import GuildPolicy, Policy, Scope
from bot.wiring import Tuning, build_bot
from sandbox.errors import SandboxError
from sandbox.interactions import InteractionRecord
from sandbox.models import DEFAULT_BOT_PERMISSIONS, SGuild, SUser
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


# ----------------------------------------------------------------------------- a server for any policy

#: What an invented role a scope grants carries when the scope sets no permission_ceiling.
REHEARSAL_ROLE_PERMISSIONS = ("view_channel", "send_messages")
#: Access for a bot is asked for by a server admin: the bot scopes' requesters get this role too.
REHEARSAL_ADMIN_ROLE = "server-admins"

_RoleKey = tuple[str, int | str]


@dataclasses.dataclass(frozen=True)
class Cast:
    """Who plays one scope in a rehearsal server (member names, as in the scenario format)."""

    guild: str  # the rehearsal server's name
    policy: GuildPolicy
    scope: Scope
    target: str  # the role (kind role) or channel (kind channel) the scope grants, by its name here ("" for a token)
    approvals: str  # the approvals channel, by its name here
    requester: str
    subject: str | None  # the bot a bot scope is asked for; None: the requester receives it
    approvers: tuple[str, ...]  # enough to reach the quorum, none of them the requester
    outsider: str | None  # someone who may not request it; None when @everyone may
    auto_limit: dt.timedelta | None  # the requester is auto-approved up to this long (None: never)
    auto_member: str | None = None  # someone auto_approve lets in without votes (None: no such rule)
    auto_length: dt.timedelta | None = None  # ... for this long


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    """A server (in the [[guild]] format) for every guild of a policy, and a cast for every scope."""

    guilds: list[dict[str, Any]]
    casts: list[Cast]


def rehearsal_server(policy: Policy) -> Rehearsal:
    """Build a rehearsal server from what a policy names: its guilds, roles, channels and people.

    Everything the policy names exists with that name, or with that id when it names an id (an
    invented name then says what it is for). Each role gets invented members (``engineers-1``,
    ``engineers-2`` …), enough for every scope's requester and quorum; ``visitor`` holds no role;
    ``user-<id>`` is a user the policy names by id; a bot scope is asked for ``<scope>-bot`` by a
    requester who is also a server admin. Warden's role sits above every role, with what each
    channel scope needs. Member names are documented in docs/scenarios.md.
    """
    user_ids = {
        int(a.ref)
        for a in (
            *(a for s in policy.scopes for a in s.approvers),
            *(a for g in policy.guilds for a in g.admins),
        )
        if a.kind == "user"
    }
    guilds: list[dict[str, Any]] = []
    casts: list[Cast] = []
    for gp in policy.guilds:
        plan = _ServerPlan(gp, policy.scopes_for(gp), user_ids)
        casts += [plan.cast(scope) for scope in policy.scopes_for(gp)]
        guilds.append(plan.spec())
    return Rehearsal(guilds, casts)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "role"


class _ServerPlan:
    """One rehearsal server, filled in as the policy's references are met (bottom role first)."""

    def __init__(self, gp: GuildPolicy, scopes: list[Scope], user_ids: set[int]) -> None:
        self.gp = gp
        self.user_ids = user_ids
        is_id = gp.key.isdigit()
        self.name = f"server-{gp.key}" if is_id else gp.key
        self.id = int(gp.key) if is_id else None
        self.roles: dict[_RoleKey, dict[str, Any]] = {}
        self.channels: dict[_RoleKey, dict[str, Any]] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, list[str]] = {}
        self.bot_permissions = set(DEFAULT_BOT_PERMISSIONS)
        # Names the policy uses are kept for what it means by them; invented names avoid them.
        role_refs: list[object] = [gp.ping_role, *(a.ref for a in gp.admins), *gp.broad_roles]
        for s in scopes:
            role_refs += [s.role, *(a.ref for a in s.approvers), *s.requesters]
            role_refs += [r.members_of for r in s.auto_approve]
        self.role_names = {str(r).removeprefix("@").casefold() for r in role_refs if isinstance(r, str)}
        channel_refs = [gp.approvals_channel, gp.governance_channel, *(s.channel for s in scopes)]
        self.channel_names = {"general"} | {
            str(c).removeprefix("#").casefold() for c in channel_refs if isinstance(c, str)
        }
        self.member_names = {"owner"}
        self.channel(gp.approvals_channel, "approvals")
        self.channel(gp.governance_channel, "governance")
        if gp.ping_role is not None:
            self.who(gp.ping_role, "ping")
        for admin in gp.admins:
            self.who(admin.ref, "admins", user=admin.kind == "user")
        for broad in gp.broad_roles:
            self.who(broad, "broad")

    # ---- names and references
    @staticmethod
    def _fresh(base: str, taken: set[str]) -> str:
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.casefold())
        return name

    def role(self, ref: int | str, use: str) -> str:
        """The role a policy reference means (made if new); its name in the server."""
        key: _RoleKey = ("id", ref) if isinstance(ref, int) else ("name", ref.removeprefix("@").casefold())
        if key not in self.roles:
            if isinstance(ref, int):
                spec = {"name": self._fresh(_slug(use), self.role_names), "id": ref}
            else:
                spec = {"name": ref.removeprefix("@")}
            self.roles[key] = {**spec, "permissions": []}
        return str(self.roles[key]["name"])

    def user(self, uid: int) -> str:
        name = f"user-{uid}"
        if name not in self.members:
            self.member_names.add(name)
            self.members[name] = {"name": name, "id": uid, "roles": []}
        return name

    def who(self, ref: int | str, use: str, *, user: bool = False) -> tuple[str, str]:
        """("everyone", ""), ("user", member name) or ("role", role name)."""
        if ref == "@everyone":
            return "everyone", ""
        if user or (isinstance(ref, int) and ref in self.user_ids):
            return "user", self.user(int(ref))
        return "role", self.role(ref, use)

    def channel(self, ref: int | str, use: str, *, private: bool = False) -> str:
        key: _RoleKey = ("id", ref) if isinstance(ref, int) else ("name", ref.removeprefix("#").casefold())
        if key not in self.channels:
            if isinstance(ref, int):
                spec: dict[str, Any] = {"name": self._fresh(_slug(use), self.channel_names), "id": ref}
            else:
                spec = {"name": ref.removeprefix("#")}
            self.channels[key] = spec
        if private:
            self.channels[key]["private"] = True
        return str(self.channels[key]["name"])

    def member(self, name: str, roles: list[str] | tuple[str, ...] = (), *, bot: bool = False) -> str:
        if name not in self.members:
            self.member_names.add(name.casefold())
            self.members[name] = {"name": name, "roles": list(roles), **({"bot": True} if bot else {})}
        for role in roles:
            if role not in self.members[name]["roles"]:
                self.members[name]["roles"].append(role)
        return name

    def take(self, role: str, exclude: set[str]) -> str:
        """A member of ``role`` not in ``exclude``: an earlier one, or a new ``<role>-<n>``."""
        pool = self.pools.setdefault(role, [])
        for name in pool:
            if name not in exclude:
                return name
        name = self._fresh(f"{_slug(role)}-{len(pool) + 1}", self.member_names)
        pool.append(self.member(name, [role]))
        return name

    # ---- one scope
    def cast(self, scope: Scope) -> Cast:
        if scope.kind == "role":
            assert scope.role is not None
            target = self.role(scope.role, scope.id)
            spec = self.roles[
                ("id", scope.role) if isinstance(scope.role, int) else ("name", target.casefold())
            ]
            wanted = set(
                scope.permission_ceiling
                if scope.permission_ceiling is not None
                else REHEARSAL_ROLE_PERMISSIONS
            )
            spec["permissions"] = sorted(set(spec["permissions"]) & wanted if spec["permissions"] else wanted)
        elif scope.kind == "token":
            target = ""  # an access token for a system outside Discord: nothing changes in the server
        else:
            assert scope.channel is not None
            target = self.channel(scope.channel, scope.id, private="view_channel" in scope.allow)
            # Discord lets Warden set only permissions it has itself: its role gets what the scope gives.
            self.bot_permissions |= scope.allow | scope.deny
        requesters = [self.who(ref, f"{scope.id}-requesters") for ref in scope.requesters]
        approvers = [self.who(a.ref, f"{scope.id}-approvers", user=a.kind == "user") for a in scope.approvers]
        autos = [(self.who(r.members_of, f"{scope.id}-auto"), r.max_duration) for r in scope.auto_approve]
        # The requester must not hold the scope's own role already (that would be standing access).
        kind, ref = next((k, r) for k, r in [*requesters, requesters[0]] if (k, r) != ("role", target))
        if kind == "everyone":
            requester = self.member("newcomer")
        else:
            requester = ref if kind == "user" else self.take(ref, set())
        subject = None
        if not scope.allows_members() and not scope.breakglass:  # break-glass is taken for oneself
            admins = self.role(REHEARSAL_ADMIN_ROLE, REHEARSAL_ADMIN_ROLE)
            self.roles[("name", admins.casefold())]["permissions"] = ["manage_guild"]
            self.member(requester, [admins])
            subject = self.member(f"{_slug(scope.id)}-bot", bot=True)
        chosen: list[str] = []
        # Round the approver entries (two groups: one of each), until the quorum is reached.
        for turn in range((scope.approvals_required + 1) * len(approvers)):
            if len(chosen) >= scope.approvals_required:
                break
            kind, ref = approvers[turn % len(approvers)]
            if kind == "user":
                if ref != requester and ref not in chosen:
                    chosen.append(ref)
            elif kind == "role":
                chosen.append(self.take(ref, {requester, *chosen}))
        outsider = None if any(k == "everyone" for k, _ in requesters) else self.member("visitor")
        roles_of_requester = set(self.members.get(requester, {}).get("roles", ()))
        limits = [
            limit
            for (kind, ref), limit in autos
            if kind == "everyone" or (kind == "user" and ref == requester) or ref in roles_of_requester
        ]
        auto_member, auto_length = self._auto_member(scope, requesters, autos, requester)
        return Cast(
            self.name,
            self.gp,
            scope,
            target,
            self.channel(self.gp.approvals_channel, "approvals"),
            requester,
            subject,
            tuple(chosen),
            outsider,
            max(limits) if limits else None,
            auto_member,
            auto_length,
        )

    def _auto_member(
        self,
        scope: Scope,
        requesters: list[tuple[str, str]],
        autos: list[tuple[tuple[str, str], dt.timedelta]],
        requester: str,
    ) -> tuple[str | None, dt.timedelta | None]:
        """A member the first auto_approve rule lets in (and who may request), other than the requester."""
        if not autos or not scope.allows_members():
            return None, None  # a bot is never a member of the rule's role: bot scopes always vote
        (kind, ref), limit = autos[0]
        length = min(limit, scope.max_duration)
        if kind == "everyone":
            return requester, length
        if kind == "user":
            return None, None
        member = self.take(ref, {requester})
        if not any(k == "everyone" or (k == "role" and r == ref) for k, r in requesters):
            first = next((r for k, r in requesters if k == "role"), None)
            if first is None:
                return None, None
            self.member(member, [first])  # may request too, as the rule needs
        return member, length

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **({"id": self.id} if self.id is not None else {}),
            "bot_permissions": sorted(self.bot_permissions),
            "roles": list(self.roles.values()),
            "members": list(self.members.values()),
            "channels": list(self.channels.values()),
        }


def build_guild(sb: SandboxDiscord, spec: Mapping[str, Any]) -> SGuild:
    """Create a guild from a plain description (the scenario format's [[guild]] table).

    The guild, its roles, channels and members take the ``id`` given (a policy that names them
    by id needs them to have that id), or a fresh snowflake.
    """
    known = {"name", "id", "bot_permissions", "roles", "members", "channels"}
    unknown = set(spec) - known
    if unknown:
        raise SandboxError(
            f"guild {spec.get('name')!r}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}"
        )
    with _next_id_is(sb, spec.get("id")):
        guild = sb.create_guild(spec["name"], bot_permissions=spec.get("bot_permissions"))
    for role in spec.get("roles", []):
        # Each new role goes just above @everyone and pushes earlier ones up: list bottom to top.
        with _next_id_is(sb, role.get("id")):
            guild.create_role(
                role["name"],
                role.get("permissions", []),
                position=role.get("position", 1),
                managed=role.get("managed", False),
            )
    if spec.get("roles"):
        _order_roles(guild, [r.get("id") or r["name"] for r in spec["roles"]])
    for member in spec.get("members", []):
        bot = member.get("bot", False)
        dms_open = member.get("dms_open", True)
        user = None
        if member.get("id") is not None:
            user = sb.users.get(member["id"]) or SUser(
                member["id"], member["name"], bot=bot, dms_open=dms_open
            )
            sb.users[user.id] = user
        guild.add_member(member["name"], roles=member.get("roles", []), bot=bot, dms_open=dms_open, user=user)
    for channel in spec.get("channels", []):
        overwrites = None
        if channel.get("private"):
            # Hidden from @everyone; Warden's own role is let in, as an admin adding it would.
            overwrites = {
                guild.everyone: ([], ["view_channel"]),
                _bot_role(guild): (["view_channel", "send_messages", "manage_roles"], []),
            }
        with _next_id_is(sb, channel.get("id")):
            guild.create_channel(channel["name"], overwrites=overwrites)
    return guild


@contextlib.contextmanager
def _next_id_is(sb: SandboxDiscord, wanted: int | None) -> Iterator[None]:
    """The next snowflake the sandbox hands out is ``wanted`` (the id a policy names), then as before.

    Creating a guild, role or channel takes its own id first, so this gives that object the id.
    """
    if wanted is None:
        yield
        return
    taken = (
        wanted in sb.guilds
        or wanted in sb.channels
        or wanted in sb.users
        or any(r.id == wanted for g in sb.guilds.values() for r in g.roles)
    )
    if taken:
        raise SandboxError(
            f"id {wanted} is used twice in this sandbox; give each server, role and channel its own"
        )
    fresh = sb.snowflake
    handed = False

    def next_id() -> int:
        nonlocal handed
        if handed:
            return fresh()
        handed = True
        return wanted

    sb.snowflake = next_id  # type: ignore[assignment]
    try:
        yield
    finally:
        sb.snowflake = fresh


def _bot_role(guild: SGuild) -> Any:
    return next(r for r in guild.roles if r.managed and getattr(r, "bot_id", None))


def _order_roles(guild: SGuild, bottom_to_top: list[int | str]) -> None:
    """Positions 1..n for the listed roles (ids or names) in order, the bot's managed role above them."""
    for i, key in enumerate(bottom_to_top, start=1):
        guild.role(key).position = i
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


def campaign_policy(gid: int | str, guild: Mapping[str, str], scopes: Mapping[str, Mapping[str, str]]) -> str:
    """The policy a sandbox campaign (crash, soak) runs under: one guild with the approvals and
    governance channels, role scopes that engineers ask for and leads approve, and the standing
    holders' rule (a JIT role given by hand is reported, never reverted, so the run checks that
    Warden's own grants never take standing access away). ``guild`` and each scope's mapping add
    or override keys, written as TOML values."""
    lines = [f"[guild.{gid}]", 'approvals_channel = "approvals"', 'governance_channel = "governance"']
    lines += [f"{key} = {value}" for key, value in {"request_cooldown": '"0s"', **guild}.items()]
    for name, keys in scopes.items():
        scope = {
            "guild": f'"{gid}"',
            "kind": '"role"',
            "approvers": '["leads"]',
            "requesters": '["engineers"]',
        }
        scope |= {"reason_required": "false", **keys}
        lines += ["", f"[scope.{name}]", *(f"{key} = {value}" for key, value in scope.items())]
    return "\n".join(lines) + "\n" + _STANDING_HOLDERS_RULE


_STANDING_HOLDERS_RULE = """
[[rule]]
id = "jit-role-by-hand"
description = "A JIT role given by hand is reported, not reverted: standing holders exist here."
when = { event = "member_role_update", role_is_jit = true }
outcome = "alert"
"""


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
        self.sb.after_interaction = self._follow_ups_of
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

    async def _follow_ups_of(self, rec: InteractionRecord) -> None:
        """Wait for the cards and DMs the bot sends after answering this interaction."""
        if self.bot is not None:
            await self.bot.follow_ups.settled(rec.id)

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
            await self.bot.services.jobs.deliver_narratives()

    async def run_due(self) -> Any:
        return await self.bot.services.jobs.run_due() if self.bot is not None else None

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
