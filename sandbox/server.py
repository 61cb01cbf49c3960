"""SandboxDiscord: a local, semantic Discord for the unmodified discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from bot.clock import SystemClock
from sandbox import gateway as gw
from sandbox.acting import ActingMixin
from sandbox.admin import Admin
from sandbox.conformance import Conformance, check_request, get_spec
from sandbox.errors import (
    DiscordAPIError,
    SandboxError,
    SandboxTimeout,
    missing_access,
    missing_permissions,
    unknown,
)
from sandbox.faults import Faults
from sandbox.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    MESSAGE_COMPONENT,
    MODAL,
    MODAL_SUBMIT,
    UPDATE_MESSAGE,
    InteractionRecord,
)
from sandbox.models import (
    ADMINISTRATOR,
    CHANNEL_KINDS,
    DEFAULT_BOT_PERMISSIONS,
    EVERYONE_PERMISSIONS,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MANAGE_ROLES,
    MANAGE_WEBHOOKS,
    SEND_MESSAGES,
    VIEW_AUDIT_LOG,
    VIEW_CHANNEL,
    SChannel,
    SGuild,
    SIntegration,
    SMember,
    SMessage,
    SnowflakeGen,
    SOverwrite,
    SRole,
    SUser,
    SWebhook,
    channel_payload,
    integration_payload,
    member_payload,
    message_payload,
    permission_value,
    role_payload,
    user_payload,
    webhook_payload,
)

# audit-log action types (https://discord.com/developers/docs/resources/audit-log#audit-log-entry-object-audit-log-events)
GUILD_UPDATE = 1
CHANNEL_CREATE, CHANNEL_UPDATE, CHANNEL_DELETE = 10, 11, 12
CHANNEL_OVERWRITE_CREATE, CHANNEL_OVERWRITE_UPDATE, CHANNEL_OVERWRITE_DELETE = 13, 14, 15
MEMBER_UPDATE = 24
MEMBER_ROLE_UPDATE = 25
BOT_ADD = 28
ROLE_CREATE, ROLE_UPDATE, ROLE_DELETE = 30, 31, 32
WEBHOOK_CREATE, WEBHOOK_UPDATE, WEBHOOK_DELETE = 50, 51, 52
INTEGRATION_CREATE, INTEGRATION_UPDATE, INTEGRATION_DELETE = 80, 81, 82

JSON_CT = "application/json"
NO_AUTH_PREFIXES = ("/interactions/", "/webhooks/")
_GLOBAL_EXEMPT = NO_AUTH_PREFIXES  # interaction callbacks and webhook tokens: not the bot token's budget
WEBHOOK_TOKEN_TTL = dt.timedelta(minutes=15)


@dataclass
class RequestRecord:
    method: str
    path: str
    template: str | None
    operation_id: str | None
    status: int
    body: Any = None


@dataclass
class Req:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    headers: Any
    reason: str | None
    template: str


def _json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py compares the content type with "application/json" exactly: no charset.
    h = {"Content-Type": JSON_CT}
    if headers:
        h.update(headers)
    return web.Response(status=status, body=json.dumps(data, separators=(",", ":")).encode(), headers=h)


class SandboxDiscord(ActingMixin):
    """A local Discord: REST under ``/api/v10`` and a gateway websocket on 127.0.0.1."""

    def __init__(
        self,
        clock: Any = None,
        token: str = "sandbox-token",
        rate_limits: bool = False,
        *,
        bot_name: str = "Warden",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.clock = clock or SystemClock()
        self.token = token
        self.rate_limits = rate_limits
        self.rate_limit = (50, 1.0)  # (requests, per seconds) per route bucket when enforced
        # Discord's global limit: 50 requests per second per bot token across every route,
        # interaction callbacks and webhooks excepted. Enforced with ``rate_limits`` like the buckets.
        self.global_rate_limit: tuple[int, float] | None = (50, 1.0)
        self._global_window: list[float] = [0.0, 0]
        self.rate_limit_overrides: dict[str, tuple[int, float]] = {}  # template -> (limit, per)
        self.host = host
        self.port = port
        self.snowflake = SnowflakeGen(self.clock)
        self.application_id = self.snowflake()
        self.application_flags = 0
        self.bot_user = SUser(self.application_id, bot_name, bot=True, dms_open=False)
        self.owner_user = SUser(self.snowflake(), "app-owner")
        self.users: dict[int, SUser] = {self.bot_user.id: self.bot_user, self.owner_user.id: self.owner_user}
        self._users_by_name: dict[tuple[str, bool], SUser] = {}
        self.guilds: dict[int, SGuild] = {}
        self.channels: dict[int, SChannel] = {}
        self.dm_channels: dict[int, SChannel] = {}  # user id -> DM channel
        self.channel_messages: dict[int, list[SMessage]] = {}
        self.messages_by_id: dict[int, SMessage] = {}
        self.global_commands: list[dict] = []
        self.guild_commands: dict[int, list[dict]] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.interaction_deadline = 3.0  # seconds to answer an interaction (Discord: 3)
        # Awaited after the answer when an action waits (``wait=True``): what the bot still does for
        # this interaction after answering it (cards, DMs). SandboxWorld sets it for its bot.
        self.after_interaction: Callable[[InteractionRecord], Awaitable[None]] | None = None
        self.conformance = Conformance()
        self.faults = Faults()
        self.admin = Admin(self)
        self.gateway = gw.Gateway(self)
        self.request_log: deque[RequestRecord] = deque(maxlen=50_000)
        self._buckets: dict[tuple[str, str], list[float]] = {}
        self._message_waiters: list[asyncio.Event] = []
        self._spec = get_spec()
        self._runner: web.AppRunner | None = None
        self.api_url = ""
        self.gateway_url = ""
        self._handlers = {name[3:]: getattr(self, name) for name in dir(self) if name.startswith("op_")}

    # ================================================================ lifecycle
    async def start(self) -> SandboxDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle_rest)
        app.router.add_route("*", "/api/{tail:.*}", self._handle_bad_version)
        app.router.add_get("/", self.gateway.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.api_url = f"http://{self.host}:{self.port}/api/v10"
        self.gateway_url = f"ws://{self.host}:{self.port}/"
        return self

    async def close(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def point_discord_here(self) -> None:
        """Set discord.py's class-level endpoints to this sandbox."""
        from bot.discord_endpoints import point_discord_at

        point_discord_at(self.api_url, self.gateway_url)

    @property
    def connected(self) -> asyncio.Event:
        return self.gateway.connected

    async def wait_until_ready(self, timeout: float = 5.0) -> None:
        """Until a client has identified and received its GUILD_CREATEs."""
        try:
            await asyncio.wait_for(self.gateway.ready.wait(), timeout)
        except TimeoutError:
            raise SandboxTimeout(f"no bot identified on the sandbox gateway within {timeout}s") from None

    async def wait_until_connected(self, timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.gateway.connected.wait(), timeout)
        except TimeoutError:
            raise SandboxTimeout(f"no bot connected to the sandbox gateway within {timeout}s") from None

    async def disconnect_gateway(
        self, code: int | None = 4000, reconnect_op: bool = False, *, hold: bool = False
    ) -> None:
        """Drop the bot's websocket(s) (or ask them to reconnect with op 7); the session stays resumable.

        ``hold=True`` keeps new connections waiting before HELLO until :meth:`release_gateway`,
        so a test can make things happen while the bot is certainly disconnected.
        """
        if hold:
            self.gateway.hold()
        await self.gateway.disconnect(code=code, reconnect_op=reconnect_op)

    def release_gateway(self) -> None:
        self.gateway.release()

    def invalidate_sessions(self) -> None:
        """Forget every gateway session: the next RESUME gets op 9 and the bot must IDENTIFY."""
        self.gateway.sessions.clear()

    # ================================================================ world building
    def _now(self) -> dt.datetime:
        return self.clock.now()

    def user(self, name: str, *, bot: bool = False, dms_open: bool = True) -> SUser:
        # Indexed by name: a server of 100 guilds x 1,000 members is built in seconds, not hours.
        index = self._users_by_name
        if len(index) != len(self.users):  # users added directly (tests do): index them too
            index.clear()
            for existing in self.users.values():
                index.setdefault((existing.name, existing.bot), existing)
        found = index.get((name, bot))
        if found is not None:
            return found
        u = SUser(self.snowflake(), name, bot=bot, dms_open=dms_open)
        self.users[u.id] = u
        index[(name, bot)] = u
        return u

    def create_guild(
        self, name: str, bot_permissions: Iterable[str] | int | None = None, *, owner: str = "owner"
    ) -> SGuild:
        gid = self.snowflake()
        g = SGuild(gid, name, _sandbox=self)
        g.roles.append(SRole(gid, gid, "@everyone", permissions=EVERYONE_PERMISSIONS, position=0))
        owner_user = self.user(owner)
        g.owner = SMember(owner_user, gid, joined_at=self._now())
        g.members.append(g.owner)
        perms = permission_value(DEFAULT_BOT_PERMISSIONS if bot_permissions is None else bot_permissions)
        integration = SIntegration(
            self.snowflake(),
            gid,
            self.bot_user.name,
            account=self.bot_user,
            application_id=self.application_id,
            bot=self.bot_user,
            user=owner_user,
        )
        bot_role = SRole(
            self.snowflake(),
            gid,
            self.bot_user.name,
            permissions=perms,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        integration.role_id = bot_role.id
        g.roles.append(bot_role)
        g.integrations.append(integration)
        g.members.append(SMember(self.bot_user, gid, roles=[bot_role], joined_at=self._now()))
        general = SChannel(self.snowflake(), "general", 0, guild_id=gid)
        g.channels.append(general)
        self.channels[general.id] = general
        self.channel_messages[general.id] = []
        self.guilds[gid] = g
        self.gateway.dispatch("GUILD_CREATE", self._guild_create_payload(g, None), gw.GUILDS)
        return g

    def _create_role(
        self,
        g: SGuild,
        name: str,
        permissions: Any = None,
        *,
        position: int | None = None,
        managed: bool = False,
        color: int = 0,
        hoist: bool = False,
        bot_id: int | None = None,
    ) -> SRole:
        pos = 1 if position is None else max(1, int(position))
        shifted = []
        for r in g.roles:
            if not r.is_everyone and r.position >= pos:
                r.position += 1
                shifted.append(r)
        role = SRole(
            self.snowflake(),
            g.id,
            name,
            permissions=permission_value(permissions),
            position=pos,
            managed=managed,
            color=color,
            hoist=hoist,
            bot_id=bot_id,
        )
        g.roles.append(role)
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(g.id), "role": role_payload(role)}, gw.GUILDS
        )
        for r in shifted:
            self.gateway.dispatch(
                "GUILD_ROLE_UPDATE", {"guild_id": str(g.id), "role": role_payload(r)}, gw.GUILDS
            )
        return role

    def _add_member(self, g: SGuild, name: str, u: SUser, roles: Iterable[SRole | str]) -> SMember:
        """``u`` joins ``g`` (``name`` is what the caller called it, for the error)."""
        if g.get_member(u.id) is not None:
            raise SandboxError(f"{name!r} is already a member of {g.name!r}")
        resolved = [r if isinstance(r, SRole) else g.role(r) for r in roles]
        m = SMember(u, g.id, roles=resolved, joined_at=self._now())
        g.members.append(m)
        self._member_add_event(g, m)
        return m

    def _delete_role(self, g: SGuild, r: SRole) -> None:
        """``r`` leaves ``g`` and every member who had it (GUILD_ROLE_DELETE)."""
        g.roles.remove(r)
        for m in g.members:
            if r in m.roles:
                m.roles.remove(r)
        self.gateway.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(g.id), "role_id": str(r.id)}, gw.GUILDS)

    def _create_channel(
        self,
        g: SGuild,
        name: str,
        *,
        kind: str | int = "text",
        overwrites: Any = None,
        topic: str | None = None,
        parent: SChannel | None = None,
    ) -> SChannel:
        ctype = kind if isinstance(kind, int) else CHANNEL_KINDS[kind]
        c = SChannel(
            self.snowflake(),
            name,
            ctype,
            guild_id=g.id,
            position=len(g.channels),
            topic=topic,
            parent_id=parent.id if parent else None,
        )
        for target, spec in self._overwrite_items(overwrites):
            allow, deny = spec
            c.overwrites.append(
                SOverwrite(
                    target.id,
                    0 if isinstance(target, SRole) else 1,
                    permission_value(allow),
                    permission_value(deny),
                )
            )
        g.channels.append(c)
        self.channels[c.id] = c
        self.channel_messages[c.id] = []
        self.gateway.dispatch("CHANNEL_CREATE", channel_payload(c), gw.GUILDS)
        return c

    def _delete_channel(self, g: SGuild, c: SChannel) -> None:
        """``c`` leaves ``g`` (CHANNEL_DELETE)."""
        g.channels.remove(c)
        self.channels.pop(c.id, None)
        self.gateway.dispatch("CHANNEL_DELETE", channel_payload(c), gw.GUILDS)

    @staticmethod
    def _overwrite_items(overwrites: Any) -> list[tuple[Any, tuple[Any, Any]]]:
        """``{target: {"allow": [...], "deny": [...]}}`` or ``[(target, allow, deny), ...]``."""
        out: list[tuple[Any, tuple[Any, Any]]] = []
        if not overwrites:
            return out
        if isinstance(overwrites, dict):
            for target, spec in overwrites.items():
                if isinstance(spec, dict):
                    out.append((target, (spec.get("allow"), spec.get("deny"))))
                else:
                    out.append((target, (spec[0], spec[1])))
        else:
            for target, allow, deny in overwrites:
                out.append((target, (allow, deny)))
        return out

    def bot_member(self, g: SGuild) -> SMember:
        return g.member(self.bot_user.id)

    def _bot_guilds(self) -> list[SGuild]:
        return [g for g in self.guilds.values() if g.get_member(self.bot_user.id) is not None]

    def _bot_user_payload(self) -> dict[str, Any]:
        data = user_payload(self.bot_user)
        data.update(verified=True, mfa_enabled=False, email=None, locale="en-US")
        return data

    def _guild_payload(self, g: SGuild) -> dict[str, Any]:
        return {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(g.owner.id) if g.owner else None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": g.verification_level,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [role_payload(r) for r in sorted(g.roles, key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": g.mfa_level,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }

    def _guild_create_payload(self, g: SGuild, intents: int | None) -> dict[str, Any]:
        data = self._guild_payload(g)
        if intents is None or intents & gw.GUILD_MEMBERS:
            members = g.members
        else:
            members = [m for m in g.members if m.id == self.bot_user.id]
        joined_at = self.bot_member(g).joined_at
        data.update(
            joined_at=joined_at.isoformat() if joined_at else None,
            large=False,
            unavailable=False,
            member_count=len(g.members),
            voice_states=[],
            members=[member_payload(m) for m in members],
            channels=[channel_payload(c) for c in g.channels],
            threads=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data

    # ================================================================ lookups for tests
    def messages(self, channel: SChannel | int) -> list[SMessage]:
        cid = channel if isinstance(channel, int) else channel.id
        return [m for m in self.channel_messages.get(cid, []) if not m.deleted]

    def dm_channel(self, who: SMember | SUser) -> SChannel:
        user = who.user if isinstance(who, SMember) else who
        ch = self.dm_channels.get(user.id)
        if ch is None:
            ch = SChannel(self.snowflake(), f"dm-{user.name}", 1, recipient=user)
            self.dm_channels[user.id] = ch
            self.channels[ch.id] = ch
            self.channel_messages[ch.id] = []
        return ch

    def dms(self, who: SMember | SUser) -> list[SMessage]:
        user = who.user if isinstance(who, SMember) else who
        ch = self.dm_channels.get(user.id)
        if ch is None:
            return []
        return [m for m in self.messages(ch) if m.author.id == self.bot_user.id]

    def audit_log(self, g: SGuild) -> list[dict]:
        """Entries newest first, as Discord returns them."""
        return list(reversed(g.audit_entries))

    async def wait_for_message(
        self, where: SChannel | SMember | SUser, contains: str = "", timeout: float = 5.0
    ) -> SMessage:
        """A message (new or edited) in a channel / the bot's DMs with someone whose ``.text`` contains ``contains``."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages(where) if isinstance(where, SChannel) else self.dms(where)
            for m in reversed(msgs):
                if contains in m.text:
                    return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = "\n".join(f"  - {m.text[:120]!r}" for m in msgs[-10:]) or "  (none)"
                name = getattr(where, "name", where)
                raise SandboxTimeout(
                    f"no message containing {contains!r} in {name!r} within {timeout}s; last messages:\n{seen}"
                )
            await self.message_activity(remaining)

    async def message_activity(self, timeout: float) -> None:
        """Return when any message is posted or edited (or after ``timeout``): for callers that keep
        their own index of messages instead of scanning every channel on each wake."""
        ev = asyncio.Event()
        self._message_waiters.append(ev)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._message_waiters.remove(ev)

    def _notify_messages(self) -> None:
        for ev in self._message_waiters:
            ev.set()

    def commands(self, guild: SGuild | None = None) -> list[dict]:
        return list(self.guild_commands.get(guild.id, []) if guild else self.global_commands)

    # ================================================================ audit + events
    def _audit(
        self,
        g: SGuild,
        action_type: int,
        user_id: int,
        target_id: int | None,
        changes: list[dict] | None = None,
        options: dict | None = None,
        reason: str | None = None,
    ) -> dict:
        entry: dict[str, Any] = {
            "id": str(self.snowflake()),
            "user_id": str(user_id),
            "target_id": str(target_id) if target_id is not None else None,
            "action_type": action_type,
        }
        if changes:
            entry["changes"] = changes
        if options:
            entry["options"] = options
        if reason:
            entry["reason"] = reason
        g.audit_entries.append(entry)
        bot = g.get_member(self.bot_user.id)
        if bot is not None and g.base_permissions(bot) & VIEW_AUDIT_LOG:
            self.gateway.dispatch(
                "GUILD_AUDIT_LOG_ENTRY_CREATE", {**entry, "guild_id": str(g.id)}, gw.GUILD_MODERATION
            )
        return entry

    def _member_add_event(self, g: SGuild, m: SMember) -> None:
        self.gateway.dispatch(
            "GUILD_MEMBER_ADD", {**member_payload(m), "guild_id": str(g.id)}, gw.GUILD_MEMBERS
        )

    def _member_update_event(self, g: SGuild, m: SMember) -> None:
        self.gateway.dispatch(
            "GUILD_MEMBER_UPDATE", {**member_payload(m), "guild_id": str(g.id)}, gw.GUILD_MEMBERS
        )

    def _role_update_event(self, g: SGuild, r: SRole) -> None:
        self.gateway.dispatch(
            "GUILD_ROLE_UPDATE", {"guild_id": str(g.id), "role": role_payload(r)}, gw.GUILDS
        )

    def _channel_update_event(self, c: SChannel) -> None:
        self.gateway.dispatch("CHANNEL_UPDATE", channel_payload(c), gw.GUILDS)

    def _webhooks_update_event(self, g: SGuild, channel_id: int) -> None:
        self.gateway.dispatch(
            "WEBHOOKS_UPDATE", {"guild_id": str(g.id), "channel_id": str(channel_id)}, gw.GUILD_WEBHOOKS
        )

    def _apply_member_roles(
        self,
        g: SGuild,
        m: SMember,
        add: list[SRole],
        remove: list[SRole],
        *,
        actor_id: int,
        reason: str | None,
    ) -> None:
        add = [r for r in add if r not in m.roles]
        remove = [r for r in remove if r in m.roles]
        if not add and not remove:
            return
        for r in add:
            m.roles.append(r)
        for r in remove:
            m.roles.remove(r)
        changes = []
        if add:
            changes.append({"key": "$add", "new_value": [{"id": str(r.id), "name": r.name} for r in add]})
        if remove:
            changes.append(
                {"key": "$remove", "new_value": [{"id": str(r.id), "name": r.name} for r in remove]}
            )
        self._member_update_event(g, m)
        self._audit(g, MEMBER_ROLE_UPDATE, actor_id, m.id, changes, reason=reason)

    def _set_overwrite(
        self,
        g: SGuild,
        c: SChannel,
        target_id: int,
        type_: int,
        allow: int,
        deny: int,
        *,
        actor_id: int,
        reason: str | None,
    ) -> None:
        ow = c.overwrite_for(target_id)
        options: dict[str, Any] = {"id": str(target_id), "type": str(type_)}
        role = g.get_role(target_id) if type_ == 0 else None
        if role is not None:
            options["role_name"] = role.name
        if ow is None:
            c.overwrites.append(SOverwrite(target_id, type_, allow, deny))
            changes: list[dict[str, Any]] = [
                {"key": "id", "new_value": str(target_id)},
                {"key": "type", "new_value": type_},
                {"key": "allow", "new_value": str(allow)},
                {"key": "deny", "new_value": str(deny)},
            ]
            action = CHANNEL_OVERWRITE_CREATE
        else:
            changes = []
            if ow.allow != allow:
                changes.append({"key": "allow", "old_value": str(ow.allow), "new_value": str(allow)})
            if ow.deny != deny:
                changes.append({"key": "deny", "old_value": str(ow.deny), "new_value": str(deny)})
            ow.allow, ow.deny, ow.type = allow, deny, type_
            action = CHANNEL_OVERWRITE_UPDATE
            if not changes:
                return
        self._channel_update_event(c)
        self._audit(g, action, actor_id, c.id, changes, options=options, reason=reason)

    def _delete_overwrite(
        self, g: SGuild, c: SChannel, target_id: int, *, actor_id: int, reason: str | None
    ) -> bool:
        ow = c.overwrite_for(target_id)
        if ow is None:
            return False
        c.overwrites.remove(ow)
        options: dict[str, Any] = {"id": str(target_id), "type": str(ow.type)}
        role = g.get_role(target_id) if ow.type == 0 else None
        if role is not None:
            options["role_name"] = role.name
        changes: list[dict[str, Any]] = [
            {"key": "id", "old_value": str(target_id)},
            {"key": "type", "old_value": ow.type},
            {"key": "allow", "old_value": str(ow.allow)},
            {"key": "deny", "old_value": str(ow.deny)},
        ]
        self._channel_update_event(c)
        self._audit(g, CHANNEL_OVERWRITE_DELETE, actor_id, c.id, changes, options=options, reason=reason)
        return True

    def _set_role_permissions(
        self, g: SGuild, r: SRole, permissions: int, *, actor_id: int, reason: str | None
    ) -> None:
        if r.permissions == permissions:
            return
        old = r.permissions
        r.permissions = permissions
        self._role_update_event(g, r)
        self._audit(
            g,
            ROLE_UPDATE,
            actor_id,
            r.id,
            [{"key": "permissions", "old_value": str(old), "new_value": str(permissions)}],
            reason=reason,
        )

    def _create_webhook(
        self, g: SGuild, c: SChannel, name: str, *, actor_id: int, reason: str | None
    ) -> SWebhook:
        w = SWebhook(
            self.snowflake(), g.id, c.id, name, secrets.token_urlsafe(48), creator=self.users.get(actor_id)
        )
        g.webhooks.append(w)
        self._webhook_changed(g, w, WEBHOOK_CREATE, "new_value", actor_id=actor_id, reason=reason)
        return w

    def _delete_webhook(self, g: SGuild, w: SWebhook, *, actor_id: int, reason: str | None) -> None:
        g.webhooks.remove(w)
        self._webhook_changed(g, w, WEBHOOK_DELETE, "old_value", actor_id=actor_id, reason=reason)

    def _webhook_changed(
        self, g: SGuild, w: SWebhook, action: int, side: str, *, actor_id: int, reason: str | None
    ) -> None:
        """WEBHOOKS_UPDATE in its channel and the audit entry: a webhook created (``side`` is
        ``new_value``) or deleted (``old_value``)."""
        self._webhooks_update_event(g, w.channel_id)
        changes: list[dict[str, Any]] = [
            {"key": "type", side: w.type},
            {"key": "channel_id", side: str(w.channel_id)},
            {"key": "name", side: w.name},
        ]
        self._audit(g, action, actor_id, w.id, changes, reason=reason)

    def _delete_integration(self, g: SGuild, i: SIntegration, *, actor_id: int, reason: str | None) -> None:
        g.integrations.remove(i)
        self.gateway.dispatch(
            "INTEGRATION_DELETE",
            {
                "id": str(i.id),
                "guild_id": str(g.id),
                **({"application_id": str(i.application_id)} if i.application_id else {}),
            },
            gw.GUILD_INTEGRATIONS,
        )
        self.gateway.dispatch("GUILD_INTEGRATIONS_UPDATE", {"guild_id": str(g.id)}, gw.GUILD_INTEGRATIONS)
        self._audit(
            g,
            INTEGRATION_DELETE,
            actor_id,
            i.id,
            [
                {"key": "type", "old_value": i.type},
                {"key": "name", "old_value": i.name},
            ],
            reason=reason,
        )
        if i.bot is not None:
            member = g.get_member(i.bot.id)
            if member is not None:
                g.members.remove(member)
                self.gateway.dispatch(
                    "GUILD_MEMBER_REMOVE",
                    {"guild_id": str(g.id), "user": user_payload(i.bot)},
                    gw.GUILD_MEMBERS,
                )
            role = g.get_role(i.role_id) if i.role_id else None
            if role is not None:
                self._delete_role(g, role)

    # ================================================================ messages
    def _new_message_from(self, channel: SChannel, body: dict, **kw: Any) -> SMessage:
        """A message with the content, embeds and components of a request or callback body."""
        return self._new_message(
            channel,
            content=body.get("content"),
            embeds=body.get("embeds"),
            components=body.get("components"),
            **kw,
        )

    def _new_message(
        self,
        channel: SChannel,
        *,
        content: str | None = "",
        embeds: list | None = None,
        components: list | None = None,
        flags: int = 0,
        author: SUser | None = None,
        type_: int = 0,
        interaction: InteractionRecord | None = None,
        store: bool = True,
        attachments: list | None = None,
        webhook_id: int | None = None,
    ) -> SMessage:
        msg = SMessage(
            id=self.snowflake(),
            channel_id=channel.id,
            author=author or self.bot_user,
            content=content or "",
            embeds=list(embeds or []),
            components=list(components or []),
            flags=flags,
            guild_id=channel.guild_id,
            created_at=self._now(),
            type=type_,
            attachments=list(attachments or []),
            webhook_id=webhook_id,
        )
        if interaction is not None:
            msg.webhook_id = self.application_id
            msg.application_id = self.application_id
            msg.interaction = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user_payload(interaction.user),
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if interaction.type == APPLICATION_COMMAND:
                msg.interaction["name"] = interaction.name
        self.messages_by_id[msg.id] = msg
        if store and not msg.ephemeral:
            self.channel_messages.setdefault(channel.id, []).append(msg)
            channel.last_message_id = msg.id
            intent = gw.DIRECT_MESSAGES if channel.type == 1 else gw.GUILD_MESSAGES
            self.gateway.dispatch("MESSAGE_CREATE", message_payload(msg), intent)
        self._notify_messages()
        return msg

    def _edit_message(self, msg: SMessage, body: dict[str, Any]) -> SMessage:
        if "content" in body:
            msg.content = body["content"] or ""
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        if "embed" in body and body["embed"] is not None:
            msg.embeds = [body["embed"]]
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            msg.flags = (msg.flags & 64) | (int(body["flags"]) & ~64 & ~128)
        if "attachments" in body and body["attachments"] is not None:
            msg.attachments = [
                a
                for a in msg.attachments
                if str(a.get("id")) in {str(x.get("id")) for x in body["attachments"]}
            ]
        msg.flags &= ~128  # no longer "thinking"
        msg.edited_at = self._now()
        msg.revision += 1
        if not msg.ephemeral and not msg.deleted:
            channel = self.channels.get(msg.channel_id)
            intent = gw.DIRECT_MESSAGES if channel is not None and channel.type == 1 else gw.GUILD_MESSAGES
            self.gateway.dispatch("MESSAGE_UPDATE", message_payload(msg), intent)
        self._notify_messages()
        return msg

    def _delete_message(self, msg: SMessage) -> None:
        msg.deleted = True
        lst = self.channel_messages.get(msg.channel_id)
        if lst is not None and msg in lst:
            lst.remove(msg)
        if not msg.ephemeral:
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id:
                data["guild_id"] = str(msg.guild_id)
            channel = self.channels.get(msg.channel_id)
            intent = gw.DIRECT_MESSAGES if channel is not None and channel.type == 1 else gw.GUILD_MESSAGES
            self.gateway.dispatch("MESSAGE_DELETE", data, intent)

    # ================================================================ REST plumbing
    async def _handle_bad_version(self, request: web.Request) -> web.Response:
        self.conformance.violation(f"{request.method} {request.path}: only /api/v10 is served")
        return _json_response(404, {"message": "404: Not Found", "code": 0})

    async def _read_body(self, request: web.Request) -> tuple[Any, bool, bytes | None, list[dict]]:
        if not request.body_exists:
            return None, False, None, []
        ctype = request.content_type
        if ctype == "multipart/form-data":
            payload: Any = None
            files: list[dict] = []
            reader = await request.multipart()
            async for part in reader:
                assert isinstance(part, BodyPartReader)  # discord.py never nests multipart bodies
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    data = await part.read()
                    files.append({"name": part.name, "filename": part.filename, "size": len(data)})
            return payload, payload is not None, None, files
        raw = await request.read()
        if not raw:
            return None, False, None, []
        try:
            return json.loads(raw), True, raw, []
        except ValueError:
            raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None

    def _ratelimit_headers(
        self, template: str, params: dict[str, str]
    ) -> tuple[dict[str, str], float | None]:
        limit, per = self.rate_limit_overrides.get(template, self.rate_limit)
        major = params.get("channel_id") or params.get("guild_id") or params.get("webhook_id") or ""
        bucket = hashlib.blake2s(template.encode(), digest_size=8).hexdigest()
        now = time.time()
        retry_after = None
        if self.rate_limits and self.global_rate_limit and not template.startswith(_GLOBAL_EXEMPT):
            g_limit, g_per = self.global_rate_limit
            window = self._global_window
            if now - window[0] >= g_per:
                window[0], window[1] = now, 0
            if window[1] >= g_limit:
                return {}, -max(0.001, window[0] + g_per - now)  # negative: the global limit
            window[1] += 1
        if self.rate_limits and not template.startswith("/interactions/"):
            window = self._buckets.setdefault((template, major), [now, 0])
            if now - window[0] >= per:
                window[0], window[1] = now, 0
            if window[1] >= limit:
                retry_after = max(0.001, window[0] + per - now)
                remaining = 0
            else:
                window[1] += 1
                remaining = limit - int(window[1])
            reset = window[0] + per
        else:
            remaining = limit - 1
            reset = now + per
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{reset:.3f}",
            "X-RateLimit-Reset-After": f"{max(0.0, reset - now):.3f}",
            "X-RateLimit-Bucket": bucket,
        }
        return headers, retry_after

    @staticmethod
    def _rate_limited(retry_after: float, headers: dict[str, str], scope: str = "user") -> web.Response:
        h = dict(headers)
        h.update(
            {
                "Retry-After": str(max(1, int(retry_after + 0.999))),
                "X-RateLimit-Scope": scope,
                "Via": "1.1 google",
            }
        )
        return _json_response(
            429,
            {
                "message": "You are being rate limited.",
                "retry_after": round(retry_after, 3),
                "global": scope == "global",
            },
            h,
        )

    async def _handle_rest(self, request: web.Request) -> web.Response:
        method = request.method
        path = "/" + request.match_info["tail"]
        query = dict(request.query)
        record = RequestRecord(method, path, None, None, 0)
        self.request_log.append(record)
        try:
            body, has_body, raw, files = await self._read_body(request)
        except DiscordAPIError as e:
            record.status = e.status
            self.conformance.violation(f"{method} {path}: {e.message}")
            return _json_response(e.status, e.payload())
        record.body = body
        check = check_request(self._spec, method, path, query, body, has_body, raw)
        record.template = check.template
        if check.status in (404, 405):
            self.conformance.violation(check.problems[0])
            record.status = check.status
            msg = "404: Not Found" if check.status == 404 else "405: Method Not Allowed"
            return _json_response(check.status, {"message": msg, "code": 0})
        op = check.operation
        assert op is not None and check.template is not None
        record.operation_id = op.operation_id
        self.conformance.record(op.operation_id)
        rl_headers, retry_after = self._ratelimit_headers(check.template, check.path_params)
        if self.faults:
            delay = self.faults.take("delay", method, check.template, path)
            if delay is not None:
                await asyncio.sleep(delay.seconds)
            fail = self.faults.take("fail", method, check.template, path)
            if fail is not None:
                record.status = fail.status
                if fail.status == 429:
                    return self._rate_limited(fail.retry_after, {**rl_headers, "X-RateLimit-Remaining": "0"})
                return _json_response(
                    fail.status,
                    {"message": fail.message or f"{fail.status}: injected fault", "code": fail.code},
                    rl_headers,
                )
        if check.problems:
            for p in check.problems:
                self.conformance.violation(p)
            record.status = 400
            return _json_response(
                400, {"message": "Invalid Form Body", "code": 50035, "errors": check.form_errors}, rl_headers
            )
        if (
            not path.startswith(NO_AUTH_PREFIXES)
            and request.headers.get("Authorization") != f"Bot {self.token}"
        ):
            record.status = 401
            return _json_response(401, {"message": "401: Unauthorized", "code": 0}, rl_headers)
        if retry_after is not None and retry_after < 0:
            record.status = 429
            return self._rate_limited(-retry_after, {"X-RateLimit-Global": "true"}, scope="global")
        if retry_after is not None:
            record.status = 429
            return self._rate_limited(retry_after, rl_headers)
        handler = self._handlers.get(op.operation_id)
        if handler is None:
            self.conformance.violation(
                f"{op.operation_id} ({method} {check.template}): the sandbox does not implement this operation"
            )
            record.status = 404
            return _json_response(
                404, {"message": "404: Not Found (not implemented by the sandbox)", "code": 0}, rl_headers
            )
        reason_raw = request.headers.get("X-Audit-Log-Reason")
        req = Req(
            method,
            path,
            check.path_params,
            query,
            body if has_body else None,
            request.headers,
            unquote(reason_raw) if reason_raw else None,
            check.template,
        )
        if files:
            req.headers = dict(request.headers)
            req.headers["x-sandbox-files"] = files
        try:
            result = handler(req)
            if asyncio.iscoroutine(result):
                result = await result
        except DiscordAPIError as e:
            record.status = e.status
            return _json_response(e.status, e.payload(), {**rl_headers, **e.headers})
        if result is None:
            record.status = 204
            return web.Response(status=204, headers=rl_headers)
        status, data = result
        record.status = status
        return _json_response(status, data, rl_headers)

    # ================================================================ REST helpers
    def _guild(self, gid: str) -> SGuild:
        g = self.guilds.get(int(gid))
        if g is None or g.get_member(self.bot_user.id) is None:
            raise unknown("Guild", 10004)
        return g

    def _member(self, g: SGuild, uid: str) -> SMember:
        m = g.get_member(int(uid))
        if m is None:
            raise unknown("Member", 10007)
        return m

    def _role(self, g: SGuild, rid: str) -> SRole:
        r = g.get_role(int(rid))
        if r is None:
            raise unknown("Role", 10011)
        return r

    def _channel(self, cid: str) -> SChannel:
        c = self.channels.get(int(cid))
        if c is None:
            raise unknown("Channel", 10003)
        if c.guild_id is not None:
            g = self.guilds.get(c.guild_id)
            if g is None or g.get_member(self.bot_user.id) is None:
                raise unknown("Channel", 10003)
            if not g.channel_permissions(self.bot_member(g), c) & VIEW_CHANNEL:
                raise missing_access()
        return c

    def _require(self, g: SGuild, perm: int, channel: SChannel | None = None) -> SMember:
        bot = self.bot_member(g)
        perms = g.channel_permissions(bot, channel) if channel is not None else g.base_permissions(bot)
        if not perms & perm:
            raise missing_permissions()
        return bot

    def _check_role_hierarchy(self, g: SGuild, role: SRole, *, allow_managed: bool = False) -> None:
        bot = self.bot_member(g)
        if role.is_everyone:
            raise missing_permissions()
        if role.managed and not allow_managed:
            raise missing_permissions()
        if g.owner is not None and bot.id == g.owner.id:
            return
        if g.top_role(bot).position <= role.position:
            raise missing_permissions()

    # ================================================================ REST: users / application
    def op_get_my_user(self, req: Req) -> tuple[int, Any]:
        return 200, self._bot_user_payload()

    def op_get_my_oauth2_application(self, req: Req) -> tuple[int, Any]:
        return 200, self._application_payload()

    def op_get_my_application(self, req: Req) -> tuple[int, Any]:
        return 200, self._application_payload()

    def _application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "Warden (sandbox)",
            "rpc_origins": [],
            "bot_public": False,
            "bot_require_code_grant": False,
            "bot": self._bot_user_payload(),
            "owner": user_payload(self.owner_user),
            "team": None,
            "verify_key": "0" * 64,
            "flags": self.application_flags,
            "summary": "",
            "type": None,
            "hook": True,
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "tags": [],
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
            "integration_types_config": {"0": {}},
            "approximate_guild_count": len(self._bot_guilds()),
        }

    # ================================================================ REST: application commands
    def _check_app(self, req: Req) -> None:
        if str(req.params["application_id"]) != str(self.application_id):
            raise DiscordAPIError(403, 50001, "Missing Access")

    def _store_commands(self, payload: list[dict] | None, guild: SGuild | None) -> list[dict]:
        existing = {(c["name"], c.get("type", 1)): c for c in self.commands(guild)}
        stored = []
        for cmd in payload or []:
            kind = cmd.get("type", 1)
            old = existing.get((cmd["name"], kind))
            data = {
                "id": old["id"] if old else str(self.snowflake()),
                "application_id": str(self.application_id),
                "version": str(self.snowflake()),
                "default_member_permissions": cmd.get("default_member_permissions"),
                "type": kind,
                "name": cmd["name"],
                "name_localizations": cmd.get("name_localizations"),
                "description": cmd.get("description", ""),
                "description_localizations": cmd.get("description_localizations"),
                "dm_permission": cmd.get("dm_permission", True),
                "contexts": cmd.get("contexts"),
                "integration_types": cmd.get("integration_types", [0]),
                "nsfw": cmd.get("nsfw", False),
                "options": cmd.get("options") or [],
            }
            if guild is not None:
                data["guild_id"] = str(guild.id)
            stored.append(data)
        if guild is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild.id] = stored
        return stored

    def op_bulk_set_application_commands(self, req: Req) -> tuple[int, Any]:
        self._check_app(req)
        return 200, self._store_commands(req.body, None)

    def op_list_application_commands(self, req: Req) -> tuple[int, Any]:
        self._check_app(req)
        return 200, self.global_commands

    def op_bulk_set_guild_application_commands(self, req: Req) -> tuple[int, Any]:
        self._check_app(req)
        g = self._guild(req.params["guild_id"])
        return 200, self._store_commands(req.body, g)

    def op_list_guild_application_commands(self, req: Req) -> tuple[int, Any]:
        self._check_app(req)
        g = self._guild(req.params["guild_id"])
        return 200, self.guild_commands.get(g.id, [])

    # ================================================================ REST: guild reads
    def op_get_guild(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        data = self._guild_payload(g)
        if req.query.get("with_counts") in ("true", "1", "True"):
            data.update(approximate_member_count=len(g.members), approximate_presence_count=0)
        return 200, data

    def op_list_guild_roles(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        return 200, [role_payload(r) for r in sorted(g.roles, key=lambda r: r.position)]

    def op_get_guild_role(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        return 200, role_payload(self._role(g, req.params["role_id"]))

    def op_get_guild_member(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        return 200, member_payload(self._member(g, req.params["user_id"]))

    def op_list_guild_members(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        after = int(req.query.get("after", 0))
        limit = int(req.query.get("limit", 1))
        members = sorted((m for m in g.members if m.id > after), key=lambda m: m.id)[:limit]
        return 200, [member_payload(m) for m in members]

    def op_list_guild_channels(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        return 200, [channel_payload(c) for c in g.channels]

    def op_get_channel(self, req: Req) -> tuple[int, Any]:
        return 200, channel_payload(self._channel(req.params["channel_id"]))

    # ================================================================ REST: member roles
    def op_add_guild_member_role(self, req: Req) -> None:
        self._change_member_role(req, add=True)

    def op_delete_guild_member_role(self, req: Req) -> None:
        self._change_member_role(req, add=False)

    def _change_member_role(self, req: Req, *, add: bool) -> None:
        g = self._guild(req.params["guild_id"])
        m = self._member(g, req.params["user_id"])
        r = self._role(g, req.params["role_id"])
        self._require(g, MANAGE_ROLES)
        self._check_role_hierarchy(g, r)
        added, removed = ([r], []) if add else ([], [r])
        self._apply_member_roles(g, m, added, removed, actor_id=self.bot_user.id, reason=req.reason)

    def op_update_guild_member(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        m = self._member(g, req.params["user_id"])
        body = req.body or {}
        if body.get("roles") is not None:
            self._require(g, MANAGE_ROLES)
            wanted = []
            for rid in body["roles"]:
                r = g.get_role(int(rid))
                if r is None:
                    raise DiscordAPIError(
                        400,
                        50035,
                        "Invalid Form Body",
                        {"roles": {"_errors": [{"code": "UNKNOWN_ROLE", "message": f"Unknown role {rid}"}]}},
                    )
                if not r.is_everyone and r not in wanted:
                    wanted.append(r)
            add = [r for r in wanted if r not in m.roles]
            remove = [r for r in m.roles if r not in wanted]
            for r in add + remove:
                self._check_role_hierarchy(g, r)
            self._apply_member_roles(g, m, add, remove, actor_id=self.bot_user.id, reason=req.reason)
        if "nick" in body:
            old = m.nick
            m.nick = body["nick"]
            if old != m.nick:
                self._member_update_event(g, m)
                self._audit(
                    g,
                    MEMBER_UPDATE,
                    self.bot_user.id,
                    m.id,
                    [{"key": "nick", "old_value": old, "new_value": m.nick}],
                    reason=req.reason,
                )
        return 200, member_payload(m)

    # ================================================================ REST: roles
    def op_update_guild_role(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        r = self._role(g, req.params["role_id"])
        self._require(g, MANAGE_ROLES)
        if not r.is_everyone:
            self._check_role_hierarchy(g, r, allow_managed=True)
        body = req.body or {}
        if body.get("permissions") is not None:
            new = int(body["permissions"])
            bot_perms = g.base_permissions(self.bot_member(g))
            if not bot_perms & ADMINISTRATOR and (new & ~r.permissions) & ~bot_perms:
                raise missing_permissions()  # cannot grant what you do not have
            self._set_role_permissions(g, r, new, actor_id=self.bot_user.id, reason=req.reason)
        changes = []
        for key in ("name", "color", "hoist", "mentionable"):
            if key in body and body[key] is not None and getattr(r, key) != body[key]:
                changes.append({"key": key, "old_value": getattr(r, key), "new_value": body[key]})
                setattr(r, key, body[key])
        if changes:
            self._role_update_event(g, r)
            self._audit(g, ROLE_UPDATE, self.bot_user.id, r.id, changes, reason=req.reason)
        return 200, role_payload(r)

    # ================================================================ REST: channel overwrites
    def _overwrite_guard(self, g: SGuild, c: SChannel, allow: int, deny: int) -> None:
        bot = self.bot_member(g)
        base = g.base_permissions(bot)
        if base & ADMINISTRATOR:
            return
        chan = g.channel_permissions(bot, c)
        if not (base & MANAGE_ROLES or chan & MANAGE_ROLES):
            raise missing_permissions()
        if not chan & VIEW_CHANNEL:
            raise missing_access()
        if (allow | deny) & ~chan:
            raise missing_permissions()  # cannot allow/deny permissions the bot lacks in the channel

    def op_set_channel_permission_overwrite(self, req: Req) -> None:
        c = self._channel(req.params["channel_id"])
        if c.guild_id is None:
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        g = self.guilds[c.guild_id]
        body = req.body or {}
        allow = int(body.get("allow") or 0)
        deny = int(body.get("deny") or 0)
        target = int(req.params["overwrite_id"])
        type_ = body.get("type")
        if type_ is None:
            type_ = 0 if g.get_role(target) else 1
        type_ = int(type_)
        if type_ == 0 and g.get_role(target) is None:
            raise unknown("Role", 10011)
        if type_ == 1 and g.get_member(target) is None:
            raise unknown("Member", 10007)
        self._overwrite_guard(g, c, allow, deny)
        self._set_overwrite(g, c, target, type_, allow, deny, actor_id=self.bot_user.id, reason=req.reason)

    def op_delete_channel_permission_overwrite(self, req: Req) -> None:
        c = self._channel(req.params["channel_id"])
        if c.guild_id is None:
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        g = self.guilds[c.guild_id]
        self._overwrite_guard(g, c, 0, 0)
        self._delete_overwrite(
            g, c, int(req.params["overwrite_id"]), actor_id=self.bot_user.id, reason=req.reason
        )

    # ================================================================ REST: audit log
    def op_list_guild_audit_log_entries(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        self._require(g, VIEW_AUDIT_LOG)
        q = req.query
        entries = list(g.audit_entries)
        if q.get("user_id"):
            entries = [e for e in entries if e["user_id"] == str(int(q["user_id"]))]
        if q.get("target_id"):
            entries = [e for e in entries if e.get("target_id") == str(int(q["target_id"]))]
        if q.get("action_type"):
            entries = [e for e in entries if e["action_type"] == int(q["action_type"])]
        limit = int(q.get("limit") or 50)
        if q.get("before"):
            entries = [e for e in entries if int(e["id"]) < int(q["before"])]
        if q.get("after") and not q.get("before"):
            after = int(q["after"])
            entries = [e for e in entries if int(e["id"]) > after][:limit]
            entries.reverse()
        else:
            if q.get("after"):
                entries = [e for e in entries if int(e["id"]) > int(q["after"])]
            entries = list(reversed(entries))[:limit]
        user_ids = {int(e["user_id"]) for e in entries if e.get("user_id")}
        user_ids |= {
            int(e["target_id"]) for e in entries if e.get("target_id") and int(e["target_id"]) in self.users
        }
        return 200, {
            "audit_log_entries": entries,
            "users": [user_payload(self.users[u]) for u in user_ids if u in self.users],
            "integrations": [integration_payload(i) for i in g.integrations],
            "webhooks": [webhook_payload(w) for w in g.webhooks],
            "guild_scheduled_events": [],
            "threads": [],
            "application_commands": [],
            "auto_moderation_rules": [],
        }

    # ================================================================ REST: webhooks + integrations
    def op_get_guild_webhooks(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        self._require(g, MANAGE_WEBHOOKS)
        return 200, [webhook_payload(w) for w in g.webhooks]

    def _webhook_channel(self, req: Req) -> tuple[SGuild, SChannel]:
        """The guild channel a webhook request names, once the bot may manage its webhooks."""
        c = self._channel(req.params["channel_id"])
        if c.guild_id is None:
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        g = self.guilds[c.guild_id]
        self._require(g, MANAGE_WEBHOOKS, c)
        return g, c

    def op_list_channel_webhooks(self, req: Req) -> tuple[int, Any]:
        g, c = self._webhook_channel(req)
        return 200, [webhook_payload(w) for w in g.webhooks if w.channel_id == c.id]

    def _find_webhook(self, wid: int) -> tuple[SGuild, SWebhook]:
        for g in self._bot_guilds():
            for w in g.webhooks:
                if w.id == wid:
                    return g, w
        raise unknown("Webhook", 10015)

    def op_get_webhook(self, req: Req) -> tuple[int, Any]:
        g, w = self._find_webhook(int(req.params["webhook_id"]))
        self._require(g, MANAGE_WEBHOOKS)
        return 200, webhook_payload(w)

    def op_create_webhook(self, req: Req) -> tuple[int, Any]:
        g, c = self._webhook_channel(req)
        name = str((req.body or {}).get("name") or "")
        if not 1 <= len(name) <= 80 or "clyde" in name.lower():
            raise DiscordAPIError(
                400, 50035, "Invalid Form Body", {"name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH"}]}}
            )
        w = self._create_webhook(g, c, name, actor_id=self.bot_user.id, reason=req.reason)
        return 200, webhook_payload(w)

    def op_delete_webhook(self, req: Req) -> None:
        g, w = self._find_webhook(int(req.params["webhook_id"]))
        self._require(g, MANAGE_WEBHOOKS, self.channels.get(w.channel_id))
        self._delete_webhook(g, w, actor_id=self.bot_user.id, reason=req.reason)

    def op_list_guild_integrations(self, req: Req) -> tuple[int, Any]:
        g = self._guild(req.params["guild_id"])
        self._require(g, MANAGE_GUILD)
        return 200, [integration_payload(i) for i in g.integrations]

    def op_delete_guild_integration(self, req: Req) -> None:
        g = self._guild(req.params["guild_id"])
        self._require(g, MANAGE_GUILD)
        iid = int(req.params["integration_id"])
        for i in g.integrations:
            if i.id == iid:
                self._delete_integration(g, i, actor_id=self.bot_user.id, reason=req.reason)
                return
        raise unknown("Integration", 10005)

    # ================================================================ REST: messages
    def _check_send(self, c: SChannel) -> None:
        if c.type == 1:
            assert c.recipient is not None
            if not c.recipient.dms_open or c.recipient.bot:
                raise DiscordAPIError(403, 50007, "Cannot send messages to this user")
            return
        g = self.guilds[c.guild_id]  # type: ignore[index]
        self._require(g, SEND_MESSAGES, c)

    @staticmethod
    def _message_body_empty(body: dict) -> bool:
        return not (
            body.get("content")
            or body.get("embeds")
            or body.get("components")
            or body.get("sticker_ids")
            or body.get("poll")
            or body.get("attachments")
        )

    def op_create_message(self, req: Req) -> tuple[int, Any]:
        c = self._channel(req.params["channel_id"])
        body = req.body or {}
        self._check_send(c)
        files = req.headers.get("x-sandbox-files") if isinstance(req.headers, dict) else None
        if self._message_body_empty(body) and not files:
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        flags = int(body.get("flags") or 0) & ~64  # ephemeral is interaction-only
        attachments = [
            {
                "id": str(self.snowflake()),
                "filename": f.get("filename") or "file",
                "size": f["size"],
                "url": "https://cdn.invalid/" + (f.get("filename") or "file"),
                "proxy_url": "https://cdn.invalid/" + (f.get("filename") or "file"),
            }
            for f in files or []
        ]
        msg = self._new_message_from(c, body, flags=flags, attachments=attachments)
        return 200, message_payload(msg)

    def _get_msg(self, c: SChannel, mid: str) -> SMessage:
        msg = self.messages_by_id.get(int(mid))
        if msg is None or msg.channel_id != c.id or msg.deleted or msg.ephemeral:
            raise unknown("Message", 10008)
        return msg

    def op_get_message(self, req: Req) -> tuple[int, Any]:
        c = self._channel(req.params["channel_id"])
        return 200, message_payload(self._get_msg(c, req.params["message_id"]))

    def op_list_messages(self, req: Req) -> tuple[int, Any]:
        c = self._channel(req.params["channel_id"])
        msgs = self.messages(c)
        q = req.query
        if q.get("before"):
            msgs = [m for m in msgs if m.id < int(q["before"])]
        if q.get("after"):
            msgs = [m for m in msgs if m.id > int(q["after"])]
        limit = int(q.get("limit") or 50)
        msgs = msgs[:limit] if q.get("after") and not q.get("before") else msgs[-limit:]
        return 200, [message_payload(m) for m in reversed(msgs)]

    def op_update_message(self, req: Req) -> tuple[int, Any]:
        c = self._channel(req.params["channel_id"])
        msg = self._get_msg(c, req.params["message_id"])
        if msg.author.id != self.bot_user.id:
            raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
        return 200, message_payload(self._edit_message(msg, req.body or {}))

    def op_delete_message(self, req: Req) -> None:
        c = self._channel(req.params["channel_id"])
        msg = self._get_msg(c, req.params["message_id"])
        if msg.author.id != self.bot_user.id and c.guild_id is not None:
            self._require(self.guilds[c.guild_id], MANAGE_MESSAGES, c)
        self._delete_message(msg)

    def op_create_dm(self, req: Req) -> tuple[int, Any]:
        body = req.body or {}
        uid = int(body["recipient_id"])
        user = self.users.get(uid)
        if user is None:
            raise unknown("User", 10013)
        return 200, channel_payload(self.dm_channel(user))

    # ================================================================ REST: interactions
    def _interaction_by(self, iid: str, token: str) -> InteractionRecord:
        rec = self.interactions.get(int(iid))
        if rec is None or rec.token != token:
            raise unknown("interaction", 10062)
        return rec

    def _message_from_callback(
        self, rec: InteractionRecord, data: dict, *, loading: bool = False
    ) -> SMessage:
        flags = int(data.get("flags") or 0) & 64
        if loading:
            flags |= 128
        type_ = 20 if rec.type == APPLICATION_COMMAND else 0
        return self._new_message_from(rec.channel, data, flags=flags, type_=type_, interaction=rec)

    def op_create_interaction_response(self, req: Req) -> tuple[int, Any] | None:
        rec = self._interaction_by(req.params["interaction_id"], req.params["interaction_token"])
        loop_now = asyncio.get_running_loop().time()
        if rec.response_type is not None:
            raise DiscordAPIError(400, 40060, "Interaction has already been acknowledged.")
        if loop_now - rec.created_loop > self.interaction_deadline:
            raise unknown("interaction", 10062)
        body = req.body or {}
        ctype = int(body.get("type", 0))
        data = body.get("data") or {}
        allowed = {
            APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
            MESSAGE_COMPONENT: {
                CHANNEL_MESSAGE,
                DEFERRED_CHANNEL_MESSAGE,
                DEFERRED_UPDATE_MESSAGE,
                UPDATE_MESSAGE,
                MODAL,
            },
            AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
            MODAL_SUBMIT: {
                CHANNEL_MESSAGE,
                DEFERRED_CHANNEL_MESSAGE,
                DEFERRED_UPDATE_MESSAGE,
                UPDATE_MESSAGE,
            },
        }[rec.type]
        if ctype in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) and rec.source_message is None:
            allowed = allowed - {DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE}
        if ctype not in allowed:
            msg = f"Interaction callback type {ctype} is not valid for interaction type {rec.type}"
            self.conformance.violation(f"create_interaction_response: {msg}")
            raise DiscordAPIError(
                400,
                50035,
                "Invalid Form Body",
                {"type": {"_errors": [{"code": "INTERACTION_CALLBACK_TYPE_INVALID", "message": msg}]}},
            )
        if ctype == CHANNEL_MESSAGE and self._message_body_empty(data):
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        if ctype == MODAL and (not data.get("custom_id") or not data.get("components")):
            raise DiscordAPIError(400, 50035, "Invalid Form Body")
        rec.response_type = ctype
        rec.response_data = data
        resource: dict[str, Any] = {"type": ctype}
        if ctype == CHANNEL_MESSAGE:
            rec.original = self._message_from_callback(rec, data)
            rec.settle()
        elif ctype == DEFERRED_CHANNEL_MESSAGE:
            rec.original = self._message_from_callback(rec, {"flags": data.get("flags")}, loading=True)
        elif ctype == DEFERRED_UPDATE_MESSAGE:
            rec.original = rec.source_message
        elif ctype == UPDATE_MESSAGE:
            assert rec.source_message is not None
            rec.original = self._edit_message(rec.source_message, data)
            rec.settle()
        else:
            rec.settle()
        if rec.original is not None and ctype != DEFERRED_UPDATE_MESSAGE:
            resource["message"] = message_payload(rec.original)
        rec.acknowledge()
        if req.query.get("with_response", "").lower() not in ("true", "1"):
            return None
        interaction: dict[str, Any] = {"id": str(rec.id), "type": rec.type}
        if rec.original is not None:
            interaction.update(
                response_message_id=str(rec.original.id),
                response_message_loading=ctype == DEFERRED_CHANNEL_MESSAGE,
                response_message_ephemeral=rec.original.ephemeral,
            )
        return 200, {"interaction": interaction, "resource": resource}

    def _webhook_interaction(self, req: Req) -> InteractionRecord:
        if str(req.params["webhook_id"]) != str(self.application_id):
            raise unknown("Webhook", 10015)
        token = req.params["webhook_token"]
        rec = next((r for r in reversed(self.interactions.values()) if r.token == token), None)
        if rec is None:
            raise unknown("Webhook", 10015)
        if self._now() - rec.created_at > WEBHOOK_TOKEN_TTL:
            raise DiscordAPIError(401, 50027, "Invalid Webhook Token")
        return rec

    def op_execute_webhook(self, req: Req) -> tuple[int, Any] | None:
        rec = self._webhook_interaction(req)
        if rec.response_type is None:
            raise unknown("Webhook", 10015)
        body = req.body or {}
        if self._message_body_empty(body):
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        flags = int(body.get("flags") or 0) & 64
        msg = self._new_message_from(rec.channel, body, flags=flags, interaction=rec)
        rec.followups.append(msg)
        rec.settle()
        if req.query.get("wait", "").lower() in ("true", "1"):
            return 200, message_payload(msg)
        return None

    def _webhook_message(self, req: Req, rec: InteractionRecord) -> SMessage:
        mid = req.params.get("message_id")
        if mid is None:
            if rec.original is None or rec.original.deleted:
                raise unknown("Message", 10008)
            return rec.original
        msg = self.messages_by_id.get(int(mid))
        if msg is None or msg.deleted or (msg is not rec.original and msg not in rec.followups):
            raise unknown("Message", 10008)
        return msg

    def op_get_original_webhook_message(self, req: Req) -> tuple[int, Any]:
        rec = self._webhook_interaction(req)
        return 200, message_payload(self._webhook_message(req, rec))

    op_get_webhook_message = op_get_original_webhook_message

    def op_update_original_webhook_message(self, req: Req) -> tuple[int, Any]:
        rec = self._webhook_interaction(req)
        msg = self._webhook_message(req, rec)
        self._edit_message(msg, req.body or {})
        if msg is rec.original:
            rec.original_edits += 1
        rec.settle()
        return 200, message_payload(msg)

    op_update_webhook_message = op_update_original_webhook_message

    def op_delete_original_webhook_message(self, req: Req) -> None:
        rec = self._webhook_interaction(req)
        self._delete_message(self._webhook_message(req, rec))
        rec.settle()

    op_delete_webhook_message = op_delete_original_webhook_message
