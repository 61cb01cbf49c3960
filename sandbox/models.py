"""Plain-data model of the sandbox's Discord world and its JSON payloads.

Everything here is deliberately simple: dataclasses the tests can read, plus
``*_payload`` functions that render them exactly as Discord's API does (the
shapes discord.py's parsers expect).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast

import discord

DISCORD_EPOCH_MS = 1420070400000

T = TypeVar("T")

# ---------------------------------------------------------------- permissions

ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions.administrator.flag
MANAGE_ROLES = discord.Permissions.manage_roles.flag
MANAGE_CHANNELS = discord.Permissions.manage_channels.flag
MANAGE_WEBHOOKS = discord.Permissions.manage_webhooks.flag
MANAGE_GUILD = discord.Permissions.manage_guild.flag
VIEW_CHANNEL = discord.Permissions.view_channel.flag
SEND_MESSAGES = discord.Permissions.send_messages.flag
VIEW_AUDIT_LOG = discord.Permissions.view_audit_log.flag
MANAGE_MESSAGES = discord.Permissions.manage_messages.flag

DEFAULT_BOT_PERMISSIONS = [
    "manage_roles",
    "view_audit_log",
    "manage_channels",
    "manage_webhooks",
    "manage_guild",
    "send_messages",
    "embed_links",
    "view_channel",
    "read_message_history",
    "use_application_commands",
]


def permission_value(perms: Iterable[str] | int | str | discord.Permissions | None) -> int:
    """``["manage_roles", ...]`` / int / Permissions → the integer bit set."""
    if perms is None:
        return 0
    if isinstance(perms, discord.Permissions):
        return perms.value
    if isinstance(perms, int):
        return perms
    if isinstance(perms, str):
        if perms.isdigit():
            return int(perms)
        perms = [perms]
    value = 0
    for name in perms:
        try:
            value |= discord.Permissions(**{name: True}).value
        except TypeError:
            raise ValueError(f"unknown permission name {name!r}") from None
    return value


def permission_names(value: int) -> list[str]:
    return [name for name, on in discord.Permissions(value) if on]


# What @everyone may do in a new server: read and write text, react, use apps, join voice.
EVERYONE_PERMISSIONS = permission_value(
    [
        "view_channel",
        "send_messages",
        "read_message_history",
        "embed_links",
        "attach_files",
        "add_reactions",
        "use_application_commands",
        "connect",
        "speak",
    ]
)


# ---------------------------------------------------------------- snowflakes


class SnowflakeGen:
    """Increasing, timestamp-based ids (so discord.py's ``created_at`` follows the sandbox clock)."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._last = 0
        self._counter = itertools.count()

    def __call__(self) -> int:
        ms = int(self._clock.now().timestamp() * 1000) - DISCORD_EPOCH_MS
        candidate = (max(ms, 0) << 22) | (next(self._counter) & 0xFFF)
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate


def iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


# ---------------------------------------------------------------- dataclasses


class Mentionable:
    """What has an id and a mention in Discord's syntax (``<@id>``, ``<@&id>``, ``<#id>``)."""

    MENTION: ClassVar[str]

    if TYPE_CHECKING:  # a dataclass field, or SMember's property (no class attribute: no default)

        @property
        def id(self) -> int: ...

    @property
    def mention(self) -> str:
        return self.MENTION.format(self.id)


@dataclass(eq=False)
class SUser(Mentionable):
    MENTION: ClassVar[str] = "<@{}>"

    id: int
    name: str
    bot: bool = False
    dms_open: bool = True
    global_name: str | None = None


@dataclass(eq=False)
class SRole(Mentionable):
    MENTION: ClassVar[str] = "<@&{}>"

    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    bot_id: int | None = None  # tags.bot_id for a bot's managed role
    integration_id: int | None = None

    @property
    def is_everyone(self) -> bool:
        return self.id == self.guild_id


class _OfUser(Generic[T]):
    """A member's attribute that is its user's: the member reads (and, if ``settable``, sets) it there."""

    def __init__(self, *, settable: bool = False) -> None:
        self.settable = settable

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, member: SMember, owner: type | None = None) -> T:
        return cast(T, getattr(member.user, self.attr))

    def __set__(self, member: SMember, value: T) -> None:
        if not self.settable:
            raise AttributeError(f"a member's {self.attr} is its user's")
        setattr(member.user, self.attr, value)


@dataclass(eq=False)
class SMember(Mentionable):
    MENTION: ClassVar[str] = "<@{}>"

    user: SUser
    guild_id: int
    roles: list[SRole] = field(default_factory=list)
    nick: str | None = None
    joined_at: dt.datetime | None = None

    # What Discord keeps on the user, read (and, for ``dms_open``, set) through the member.
    id = _OfUser[int]()
    name = _OfUser[str]()
    bot = _OfUser[bool]()
    dms_open = _OfUser[bool](settable=True)

    def role_names(self) -> list[str]:
        return [r.name for r in self.roles]

    def has_role(self, role: SRole | str) -> bool:
        return any(r is role or r.name == role for r in self.roles)


@dataclass(eq=False)
class SOverwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0


CHANNEL_KINDS = {"text": 0, "dm": 1, "voice": 2, "category": 4, "announcement": 5, "news": 5, "forum": 15}


@dataclass(eq=False)
class SChannel(Mentionable):
    MENTION: ClassVar[str] = "<#{}>"

    id: int
    name: str
    type: int = 0
    guild_id: int | None = None
    position: int = 0
    overwrites: list[SOverwrite] = field(default_factory=list)
    parent_id: int | None = None
    topic: str | None = None
    recipient: SUser | None = None  # DM channels
    last_message_id: int | None = None

    def overwrite_for(self, target_id: int) -> SOverwrite | None:
        for ow in self.overwrites:
            if ow.id == target_id:
                return ow
        return None


@dataclass(eq=False)
class SMessage:
    id: int
    channel_id: int
    author: SUser
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    flags: int = 0
    guild_id: int | None = None
    created_at: dt.datetime | None = None
    edited_at: dt.datetime | None = None
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction: dict | None = None  # interaction_metadata
    attachments: list[dict] = field(default_factory=list)
    deleted: bool = False
    revision: int = 0  # bumped on every edit

    @property
    def edited(self) -> bool:
        return self.edited_at is not None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)

    @property
    def text(self) -> str:
        return render_text(self.content, self.embeds, self.components)

    def buttons(self) -> list[dict]:
        return [c for c in walk_components(self.components) if c.get("type") == 2]


@dataclass(eq=False)
class SGuildIdentity:
    """What a guild holds that is not a person: a webhook or an integration (a non-human identity)."""

    id: int
    guild_id: int


@dataclass(eq=False)
class SWebhook(SGuildIdentity):
    channel_id: int
    name: str
    token: str
    creator: SUser | None = None
    type: int = 1
    application_id: int | None = None


@dataclass(eq=False)
class SIntegration(SGuildIdentity):
    name: str
    type: str = "discord"
    account: SUser | None = None
    application_id: int | None = None
    bot: SUser | None = None
    user: SUser | None = None  # who added it
    role_id: int | None = None
    scopes: list[str] = field(default_factory=lambda: ["bot", "applications.commands"])


@dataclass(eq=False)
class SGuild:
    id: int
    name: str
    owner: SMember | None = None
    roles: list[SRole] = field(default_factory=list)
    members: list[SMember] = field(default_factory=list)
    channels: list[SChannel] = field(default_factory=list)
    webhooks: list[SWebhook] = field(default_factory=list)
    integrations: list[SIntegration] = field(default_factory=list)
    audit_entries: list[dict] = field(default_factory=list)
    mfa_level: int = 0  # 1: moderators need 2FA
    verification_level: int = 0
    _sandbox: Any = field(default=None, repr=False)
    # get_member's index: (the list it indexes, id → position, name → position).
    _member_index: tuple[list[SMember], dict[str, int], dict[str, int]] | None = field(
        default=None, repr=False, compare=False
    )

    # ----- lookups
    @property
    def everyone(self) -> SRole:
        return self.get_role(self.id)  # type: ignore[return-value]

    def get_role(self, key: int | str) -> SRole | None:
        return _lookup(self.roles, key)

    def get_member(self, key: int | str) -> SMember | None:
        """The first member whose id or name is ``key``. Indexed: a guild of 100,000 members is
        looked up on every REST call and gateway event, and a scan would make the sandbox, not
        the bot, what a benchmark measures."""
        found = self._indexed_member(key)
        if found is None and self._member_index is not None:
            # A miss costs what the old scan did: members joined, left or were renamed since.
            self._member_index = None
            found = self._indexed_member(key)
        return found

    def _indexed_member(self, key: int | str) -> SMember | None:
        members = self.members
        if self._member_index is None or self._member_index[0] is not members:
            by_id: dict[str, int] = {}
            by_name: dict[str, int] = {}
            for pos, m in enumerate(members):
                by_id.setdefault(str(m.id), pos)
                by_name.setdefault(m.user.name, pos)
            self._member_index = (members, by_id, by_name)
        _, by_id, by_name = self._member_index
        hits = [
            pos
            for pos in (by_id.get(str(key)), by_name.get(key) if isinstance(key, str) else None)
            if pos is not None
        ]
        for pos in sorted(hits):
            # Valid only while the list still holds that member there (members join and leave).
            held = members[pos] if pos < len(members) else None
            if held is not None and (str(held.id) == str(key) or held.user.name == key):
                return held
        return None

    def get_channel(self, key: int | str) -> SChannel | None:
        return _lookup(self.channels, key)

    def role(self, key: int | str) -> SRole:
        return self._required("role", key, self.get_role(key))

    def member(self, key: int | str) -> SMember:
        return self._required("member", key, self.get_member(key))

    def channel(self, key: int | str) -> SChannel:
        return self._required("channel", key, self.get_channel(key))

    def _required(self, kind: str, key: int | str, found: N | None) -> N:
        if found is None:
            raise KeyError(f"guild {self.name!r} has no {kind} {key!r}")
        return found

    def text_channels(self) -> list[SChannel]:
        return [c for c in self.channels if c.type in (0, 5)]

    # ----- builders (delegate to the sandbox so gateway events go out)
    def create_role(
        self,
        name: str,
        permissions: Iterable[str] | int | None = None,
        position: int | None = None,
        managed: bool = False,
        color: int = 0,
        *,
        hoist: bool = False,
    ) -> SRole:
        return self._sandbox._create_role(
            self, name, permissions, position=position, managed=managed, color=color, hoist=hoist
        )

    def add_member(
        self,
        name: str,
        roles: Iterable[SRole | str] = (),
        bot: bool = False,
        dms_open: bool = True,
        *,
        user: SUser | None = None,
    ) -> SMember:
        u = user or self._sandbox.user(name, bot=bot, dms_open=dms_open)
        u.dms_open = dms_open if not bot else u.dms_open
        return self._sandbox._add_member(self, name, u, roles)

    def create_channel(
        self,
        name: str,
        kind: str = "text",
        overwrites: dict | list | None = None,
        *,
        topic: str | None = None,
        parent: SChannel | None = None,
    ) -> SChannel:
        return self._sandbox._create_channel(
            self, name, kind=kind, overwrites=overwrites, topic=topic, parent=parent
        )

    # ----- permission maths (Discord's algorithm)
    def top_role(self, member: SMember) -> SRole:
        return max([self.everyone, *member.roles], key=lambda r: (r.position, -r.id))

    def base_permissions(self, member: SMember) -> int:
        if self.owner is not None and member.id == self.owner.id:
            return ALL_PERMISSIONS
        perms = self.everyone.permissions
        for r in member.roles:
            perms |= r.permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def channel_permissions(self, member: SMember, channel: SChannel) -> int:
        perms = self.base_permissions(member)
        if perms & ADMINISTRATOR or (self.owner is not None and member.id == self.owner.id):
            return ALL_PERMISSIONS
        ow = channel.overwrite_for(self.id)
        if ow:
            perms = (perms & ~ow.deny) | ow.allow
        allow = deny = 0
        role_ids = {r.id for r in member.roles}
        for ow in channel.overwrites:
            if ow.type == 0 and ow.id in role_ids:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        ow = channel.overwrite_for(member.id)
        if ow and ow.type == 1:
            perms = (perms & ~ow.deny) | ow.allow
        return perms


class _Named(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def _lookup(items: Iterable[N], key: int | str) -> N | None:
    """The first of ``items`` whose id or name is ``key`` (an id may come as a string)."""
    return next((x for x in items if x.id == key or x.name == key or str(x.id) == str(key)), None)


# ---------------------------------------------------------------- payloads


def ids(obj: object, *attrs: str) -> dict[str, str | None]:
    """``obj``'s snowflakes named ``attrs`` as Discord writes them: a string, or null when unset."""
    values = {attr: getattr(obj, attr) for attr in attrs}
    return {attr: str(value) if value else None for attr, value in values.items()}


def set_ids(obj: object, *attrs: str) -> dict[str, str]:
    """Only those of ``obj``'s snowflakes named ``attrs`` that are set (Discord leaves the others out)."""
    values = {attr: getattr(obj, attr) for attr in attrs}
    return {attr: str(value) for attr, value in values.items() if value is not None}


def user_payload(u: SUser) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "username": u.name,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": None,
        "bot": u.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "primary_guild": None,
        "collectibles": None,
    }


def role_payload(r: SRole) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(r.id),
        "name": r.name,
        "color": r.color,
        "colors": {"primary_color": r.color, "secondary_color": None, "tertiary_color": None},
        "hoist": r.hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": r.position,
        "permissions": str(r.permissions),
        "managed": r.managed,
        "mentionable": r.mentionable,
        "flags": 0,
    }
    tags = set_ids(r, "bot_id", "integration_id")
    if tags:
        data["tags"] = tags
    return data


def member_payload(m: SMember, *, with_user: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "nick": m.nick,
        "avatar": None,
        "banner": None,
        "roles": [str(r.id) for r in m.roles],
        "joined_at": iso(m.joined_at),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user_payload(m.user)
    return data


def overwrite_payload(ow: SOverwrite) -> dict[str, Any]:
    return {"id": str(ow.id), "type": ow.type, "allow": str(ow.allow), "deny": str(ow.deny)}


def channel_payload(c: SChannel, bot_user: SUser | None = None) -> dict[str, Any]:
    if c.type == 1:
        recipients = [user_payload(c.recipient)] if c.recipient else []
        return {**ids(c, "id", "last_message_id"), "type": 1, "recipients": recipients, "flags": 0}
    data: dict[str, Any] = {
        **ids(c, "id", "guild_id", "parent_id"),
        "type": c.type,
        "name": c.name,
        "position": c.position,
        "permission_overwrites": [overwrite_payload(o) for o in c.overwrites],
        "nsfw": False,
        "flags": 0,
    }
    if c.type in (0, 5):
        data.update(ids(c, "last_message_id"), topic=c.topic, rate_limit_per_user=0)
    if c.type == 2:
        data.update(bitrate=64000, user_limit=0, rtc_region=None)
    return data


def message_payload(msg: SMessage) -> dict[str, Any]:
    data: dict[str, Any] = {
        **ids(msg, "id", "channel_id"),
        "type": msg.type,
        "author": user_payload(msg.author),
        "content": msg.content,
        "timestamp": iso(msg.created_at),
        "edited_timestamp": iso(msg.edited_at),
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": msg.attachments,
        "embeds": msg.embeds,
        "pinned": False,
        "flags": msg.flags,
        "components": msg.components,
        **set_ids(msg, "guild_id", "webhook_id", "application_id"),
    }
    if msg.interaction is not None:
        data["interaction_metadata"] = msg.interaction
    return data


def webhook_payload(w: SWebhook) -> dict[str, Any]:
    data: dict[str, Any] = {
        **ids(w, "id", "guild_id", "channel_id", "application_id"),
        "type": w.type,
        "name": w.name,
        "avatar": None,
        "token": w.token,
    }
    if w.creator is not None:
        data["user"] = user_payload(w.creator)
    return data


def integration_payload(i: SIntegration) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(i.id),
        "name": i.name,
        "type": i.type,
        "enabled": True,
        "account": {
            "id": str(i.account.id if i.account else i.id),
            "name": i.account.name if i.account else i.name,
        },
        "scopes": i.scopes,
    }
    if i.user is not None:
        data["user"] = user_payload(i.user)
    if i.type != "discord":  # stream integrations (twitch/youtube) carry sync state
        data.update(
            syncing=False,
            **ids(i, "role_id"),
            enable_emoticons=False,
            expire_behavior=0,
            expire_grace_period=1,
            synced_at=None,
            subscriber_count=0,
            revoked=False,
        )
    if i.application_id is not None:
        app: dict[str, Any] = {
            "id": str(i.application_id),
            "name": i.name,
            "icon": None,
            "description": "",
            "summary": "",
        }
        if i.bot is not None:
            app["bot"] = user_payload(i.bot)
        data["application"] = app
    return data


# ---------------------------------------------------------------- helpers


def walk_components(components: Iterable[dict]) -> Iterable[dict]:
    for comp in components or ():
        yield comp
        for key in ("components", "items"):
            inner = comp.get(key)
            if isinstance(inner, list):
                yield from walk_components(inner)
        for key in ("component", "accessory"):
            inner = comp.get(key)
            if isinstance(inner, dict):
                yield from walk_components([inner])


def render_text(content: str | None, embeds: Iterable[dict], components: Iterable[dict] = ()) -> str:
    parts: list[str] = []
    if content:
        parts.append(content)
    for e in embeds or ():
        for key in ("title", "description"):
            if e.get(key):
                parts.append(str(e[key]))
        author = e.get("author") or {}
        if author.get("name"):
            parts.append(str(author["name"]))
        for f in e.get("fields") or ():
            parts.append(str(f.get("name", "")))
            parts.append(str(f.get("value", "")))
        footer = e.get("footer") or {}
        if footer.get("text"):
            parts.append(str(footer["text"]))
    for comp in walk_components(components):
        if comp.get("type") == 10 and comp.get("content"):  # text display (components v2)
            parts.append(str(comp["content"]))
    return "\n".join(parts)
