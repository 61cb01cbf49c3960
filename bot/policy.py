"""The policy: ``config.toml`` parsed into frozen, validated models.

``load_policy`` reads the TOML file and returns a :class:`Policy`, or raises
:class:`PolicyError` listing *every* problem it found, one per line, each naming
the key path, the value and what is allowed::

    scope.deploy.kind: 'rolee' is not allowed; use one of: role, channel, token
    scope.deploy.max_duration: missing; every scope needs a maximum duration (e.g. "8h")

Pydantic does the validation; its errors are rewritten into these lines (no
pydantic wording or URLs reach the policy author). Secrets never belong here:
the bot token comes from ``WARDEN_TOKEN`` / ``WARDEN_TOKEN_FILE`` (see
:mod:`bot.settings`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar

import discord
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.durations import DurationError, format_duration, parse_duration

__all__ = [
    "Approver",
    "AttestationPolicy",
    "AutoApprove",
    "GuildPolicy",
    "Policy",
    "PolicyError",
    "Rule",
    "RuleCondition",
    "RuntimeSection",
    "Scope",
    "Target",
    "load_policy",
    "parse_policy",
    "permissions_from_names",
    "review_policy",
]

#: A name (role/channel name) or a Discord snowflake id.
Target = str | int


class PolicyError(Exception):
    """The policy cannot be used. ``problems`` holds one readable line per problem."""

    def __init__(self, problems: Iterable[str], source: str = "<config>") -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


# --------------------------------------------------------------------------- helpers

_SECRET_KEYS = frozenset(
    {"token", "bot_token", "discord_token", "secret", "client_secret", "password", "api_key"}
)
_SECRET_HINT = (
    "secrets must not be in the policy; set the bot token with the WARDEN_TOKEN "
    "or WARDEN_TOKEN_FILE environment variable instead"
)
# Permissions Discord only knows guild-wide: they cannot be put on a channel overwrite.
_CHANNEL_OK = (
    discord.Permissions.all_channel().value
    | discord.Permissions(manage_events=True, create_events=True, set_voice_channel_status=True).value
)


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in _SECRET_KEYS or k.endswith("_token") or k.endswith("_secret")


def _show(value: Any) -> str:
    """A value as the policy author wrote it: strings in single quotes."""
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.timedelta):
        return f"'{format_duration(value)}'"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _sub(subpath: str, message: str) -> str:
    """A problem line for a key below the one being validated (see ``_translate``)."""
    return f"@{subpath}\t{message}"


def _duration(value: Any, *, allow_zero: bool = False) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0) or (value == dt.timedelta(0) and not allow_zero):
            raise ValueError("must be longer than zero")
        return value
    try:
        return parse_duration(value, allow_zero=allow_zero)
    except DurationError as e:
        raise ValueError(str(e)) from None


def _target(value: Any) -> Target:
    """A role/channel/user reference: a name, or an id (int or a string of digits)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{_show(value)} is not a name or an id; write a name in quotes or a numeric id")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value} is not a Discord id")
        return value
    text = value.strip()
    if not text:
        raise ValueError("must not be empty; give a name or a numeric id")
    if text.isdigit():
        return int(text)
    return text


def _optional_target(value: Any) -> Target | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _target(value)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    if isinstance(value, str):
        return [value]
    raise ValueError(f'expected a list such as ["a", "b"], got {_show(value)}')


_T = TypeVar("_T")


def _each(value: Any, parse: Callable[[Any], _T], *, if_empty: str | None = None) -> tuple[_T, ...]:
    """``parse`` on each item of a list (or one value); every item's problem is told, as ``[i]``.

    With ``if_empty``, an empty list is refused with that message.
    """
    items = _as_list(value)
    if if_empty is not None and not items:
        raise ValueError(if_empty)
    out: list[_T] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            out.append(parse(item))
        except ValueError as e:
            problems.append(_sub(f"[{i}]", str(e)))
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(out)


def _permission_names(value: Any) -> frozenset[str]:
    names: set[str] = set()
    problems: list[str] = []
    for item in _as_list(value):
        if not isinstance(item, str):
            problems.append(f"{_show(item)} is not a Discord permission name")
            continue
        name = item.strip().lower().replace(" ", "_").replace("-", "_")
        if name not in discord.Permissions.VALID_FLAGS:
            problems.append(
                f"'{item}' is not a Discord permission{_suggest(name, discord.Permissions.VALID_FLAGS)}"
            )
            continue
        names.add(name)
    if problems:
        raise ValueError("\n".join(problems))
    return frozenset(names)


def _canonical_flags() -> dict[str, int]:
    from discord.flags import alias_flag_value

    return {
        name: value
        for name, value in discord.Permissions.VALID_FLAGS.items()
        if not isinstance(discord.Permissions.__dict__.get(name), alias_flag_value)
    }


CANONICAL_PERMISSIONS = _canonical_flags()


def permission_names(bits: int) -> list[str]:
    """Permission bits → names, one per bit (``view_channel``, never its alias ``read_messages``)."""
    return [name for name, value in CANONICAL_PERMISSIONS.items() if bits & value]


def permissions_from_names(names: Iterable[str]) -> discord.Permissions:
    """``{"send_messages", "view_channel"}`` → a :class:`discord.Permissions` with those bits."""
    return discord.Permissions(**dict.fromkeys(names, True))


Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]
OptTarget = Annotated[Target | None, BeforeValidator(_optional_target)]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- models


class Approver(_Model):
    """Who may vote. ``kind="any"`` is a bare id: it matches a role *or* a user with that id
    (snowflakes are unique across both)."""

    kind: Literal["role", "user", "any"]
    ref: str | int

    @classmethod
    def parse(cls, value: Any) -> Approver:
        if isinstance(value, Approver):
            return value
        if isinstance(value, str):
            text = value.strip()
            low = text.lower()
            if low in ("@everyone", "everyone", "@here"):
                raise ValueError(f"'{value}' cannot approve; name an approver role or users")
            for prefix in ("user:", "role:"):
                if low.startswith(prefix):
                    rest = text[len(prefix) :].strip()
                    if prefix == "user:":
                        if not rest.isdigit():
                            raise ValueError(f"'{value}' is not a user id; write \"user:<numeric id>\"")
                        return cls(kind="user", ref=int(rest))
                    if not rest:
                        raise ValueError(f"'{value}' names no role; write \"role:<name or id>\"")
                    return cls(kind="role", ref=int(rest) if rest.isdigit() else rest)
        ref = _target(value)
        return cls(kind="any" if isinstance(ref, int) else "role", ref=ref)

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}" if self.kind != "any" else str(self.ref)


class AutoApprove(_Model):
    """Members of ``members_of`` get the scope without votes, for at most ``max_duration``."""

    members_of: Annotated[Target, BeforeValidator(_target)]
    max_duration: Duration


def _requester(item: Any) -> str | int:
    """``@everyone``, a ``user:``/``role:`` reference, or a role by name or id."""
    if isinstance(item, str) and item.strip().lower() in ("@everyone", "everyone"):
        return "@everyone"
    if isinstance(item, str) and item.strip().lower().startswith(("user:", "role:")):
        return Approver.parse(item).ref
    return _target(item)


#: For ``role`` and ``channel``: what a scope of that kind needs, and what the other kind grants instead.
_TARGET_TEXTS = {
    "role": (
        "a role scope needs the role to grant (its name or id)",
        "a channel scope grants permissions on `channel`",
    ),
    "channel": ("a channel scope needs the channel (its name or id)", "a role scope grants `role`"),
}
_TOKEN_TEXTS = {
    "role": "a token scope grants an access token, no role",
    "channel": "a token scope grants an access token",
}


class Scope(_Model):
    """A grantable entitlement (``[scope.<id>]``)."""

    id: str
    guild: str | None = None
    kind: Literal["role", "channel", "token"]
    description: str = Field("", max_length=100)
    role: OptTarget = Field(None, validate_default=True)
    channel: OptTarget = Field(None, validate_default=True)
    allow: frozenset[str] = Field(frozenset(), validate_default=True)
    deny: frozenset[str] = Field(frozenset(), validate_default=True)
    max_duration: Duration
    default_duration: Duration = Field(None, validate_default=True)
    approvers: tuple[Approver, ...]
    approvals_required: StrictInt = Field(1, ge=1, le=50)
    self_approval: StrictBool = False
    requesters: tuple[Target, ...]
    reason_required: StrictBool = True
    subjects: Literal["members", "bots", "both"] = "members"
    breakglass: StrictBool = False
    auto_approve: tuple[AutoApprove, ...] = ()
    permission_ceiling: frozenset[str] | None = None
    deny_ends_request: StrictBool = True

    def allows_bots(self) -> bool:
        return self.subjects in ("bots", "both")

    @property
    def issues_token(self) -> bool:
        """A scope of kind ``token`` changes nothing in Discord: its grant carries an access token."""
        return self.kind == "token"

    def allows_members(self) -> bool:
        return self.subjects in ("members", "both")

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError(
                f"'{v}' is not a usable scope name; use up to 64 letters, digits, '-', '_' or '.'"
            )
        return v

    @field_validator("guild", mode="before")
    @classmethod
    def _guild_str(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be empty; give the guild's name or id as in [guild.<name or id>]")
        return v

    @field_validator("breakglass")
    @classmethod
    def _check_breakglass(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("subjects") == "bots":
            raise ValueError(
                "break-glass is access for the member who uses it, but this scope's subjects are bots only; "
                'set subjects = "members" (or "both"), or remove breakglass'
            )
        return v

    @field_validator("role", "channel")
    @classmethod
    def _check_target(cls, v: Target | None, info: ValidationInfo) -> Target | None:
        """A role scope names its ``role``, a channel scope its ``channel``, and neither the other."""
        own = str(info.field_name)
        needs, other_grants = _TARGET_TEXTS[own]
        kind = info.data.get("kind")
        if kind == own and v is None:
            raise ValueError(f"missing; {needs}")
        if kind == "token" and v is not None:
            raise ValueError(f'only used when kind = "{own}"; {_TOKEN_TEXTS[own]}')
        if kind is not None and kind != own and v is not None:
            raise ValueError(f'only used when kind = "{own}"; {other_grants}')
        return v

    @field_validator("allow", "deny", "permission_ceiling", mode="before")
    @classmethod
    def _perm_names(cls, v: Any) -> Any:
        return None if v is None else _permission_names(v)

    @field_validator("allow", "deny")
    @classmethod
    def _check_overwrite(cls, v: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        kind = info.data.get("kind")
        if kind == "role" and v:
            raise ValueError(
                'only used when kind = "channel"; a role scope grants the role\'s own permissions'
            )
        if kind == "token" and v:
            raise ValueError('only used when kind = "channel"; a token scope sets no permissions')
        if kind == "channel" and v:
            bad = sorted(n for n in v if permissions_from_names([n]).value & ~_CHANNEL_OK)
            if bad:
                raise ValueError(
                    "\n".join(
                        f"'{n}' is a server-wide permission and cannot be set on a channel" for n in bad
                    )
                )
        if info.field_name == "deny" and kind == "channel":
            allow = info.data.get("allow")
            if allow is not None and not allow and not v:
                raise ValueError("a channel scope needs at least one permission in allow or deny")
            if allow and v & allow:
                both = ", ".join(sorted(v & allow))
                raise ValueError(f"{both} cannot be both allowed and denied")
        return v

    @field_validator("default_duration", mode="before")
    @classmethod
    def _default_duration(cls, v: Any, info: ValidationInfo) -> Any:
        cap = info.data.get("max_duration")
        if v is None:
            return min(dt.timedelta(hours=1), cap) if cap else dt.timedelta(hours=1)
        value = _duration(v)
        if cap is not None and value > cap:
            raise ValueError(f"{_show(v)} is longer than max_duration {_show(cap)}")
        return value

    @field_validator("approvers", mode="before")
    @classmethod
    def _parse_approvers(cls, v: Any) -> Any:
        return _each(
            v, Approver.parse, if_empty='must not be empty; name at least one approver role or "user:<id>"'
        )

    @field_validator("approvals_required")
    @classmethod
    def _check_quorum(cls, v: int, info: ValidationInfo) -> int:
        approvers: tuple[Approver, ...] | None = info.data.get("approvers")
        if approvers and all(a.kind == "user" for a in approvers):
            users = len({a.ref for a in approvers})
            if v > users:
                raise ValueError(
                    f"{v} approvals can never be reached: only {users} user(s) may approve; "
                    "lower it or add an approver role"
                )
        return v

    @field_validator("requesters", mode="before")
    @classmethod
    def _parse_requesters(cls, v: Any) -> Any:
        return _each(
            v,
            _requester,
            if_empty='must not be empty; name the roles or users who may request, or "@everyone"',
        )

    @field_validator("auto_approve", mode="wrap")
    @classmethod
    def _check_auto(cls, v: Any, handler: Any, info: ValidationInfo) -> tuple[AutoApprove, ...]:
        result: tuple[AutoApprove, ...] = handler(v)
        cap = info.data.get("max_duration")
        raw = v if isinstance(v, list | tuple) else []
        problems = []
        for i, a in enumerate(result):
            if cap is not None and a.max_duration > cap:
                text = raw[i].get("max_duration") if i < len(raw) and isinstance(raw[i], dict) else None
                shown = _show(text if isinstance(text, str) else a.max_duration)
                problems.append(
                    _sub(f"[{i}].max_duration", f"{shown} exceeds the scope's max_duration {_show(cap)}")
                )
        if problems:
            raise ValueError("\n".join(problems))
        return result

    @field_validator("subjects")
    @classmethod
    def _check_subjects(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("kind") == "token" and v != "members":
            raise ValueError(
                'a token scope is for members only ("members"): its token is delivered by DM, '
                "which bots cannot receive"
            )
        return v

    @field_validator("max_duration")
    @classmethod
    def _check_token_life(cls, v: dt.timedelta, info: ValidationInfo) -> dt.timedelta:
        if info.data.get("kind") == "token" and v > dt.timedelta(days=30):
            raise ValueError("a token lives at most 30 days; give a max_duration of 30d or less")
        return v

    @field_validator("permission_ceiling")
    @classmethod
    def _check_ceiling(cls, v: frozenset[str] | None, info: ValidationInfo) -> frozenset[str] | None:
        if v is not None and info.data.get("kind") == "token":
            raise ValueError("a token scope sets no permissions, so it has no ceiling")
        allow = info.data.get("allow")
        if v is not None and allow:
            ceiling = permissions_from_names(v).value
            above = sorted(n for n in allow if permissions_from_names([n]).value & ~ceiling)
            if above:
                raise ValueError(
                    f"allow has {', '.join(above)}, which the permission_ceiling does not include"
                )
        return v


def _admin(item: Any) -> Approver:
    if isinstance(item, str) and item.strip().lower() in ("@everyone", "everyone", "@here"):
        raise ValueError(f"'{item}' cannot be an admin; name admin roles or \"user:<id>\"")
    return Approver.parse(item)


class GuildPolicy(_Model):
    """Per-guild settings (``[guild.<name or id>]``)."""

    key: str
    approvals_channel: Annotated[Target, BeforeValidator(_target)]
    governance_channel: Annotated[Target, BeforeValidator(_target)]
    pending_ttl: Duration = dt.timedelta(hours=4)
    expiry_reminder: Annotated[dt.timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))] = (
        dt.timedelta(minutes=15)
    )
    max_pending_per_member: StrictInt = Field(3, ge=1, le=100)
    request_cooldown: Annotated[dt.timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))] = (
        dt.timedelta(seconds=30)
    )
    ping_role: OptTarget = None
    # Dormancy (docs/tokens.md): an access token not verified for this long is revoked; and, when not
    # "0s", a JIT grant whose holder Warden has not seen active (a message or an interaction) for this
    # long is ended early.
    token_dormant_after: Duration = dt.timedelta(days=30)
    end_idle_grants_after: Annotated[
        dt.timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))
    ] = dt.timedelta(0)
    # Audit listener: who may change permissions without an alert, and which roles count as
    # "broad" (like @everyone) for overwrite rules.
    admins: tuple[Approver, ...] = ()
    broad_roles: tuple[Target, ...] = ()

    @field_validator("admins", mode="before")
    @classmethod
    def _parse_admins(cls, v: Any) -> Any:
        return _each(v, _admin)

    @field_validator("broad_roles", mode="before")
    @classmethod
    def _parse_broad(cls, v: Any) -> Any:
        return _each(v, _target)

    def matches(self, guild_id: int, guild_name: str) -> bool:
        """True if this table is for the guild: key is its id, or its name (case-insensitive)."""
        return self.key == str(guild_id) or self.key.casefold() == (guild_name or "").casefold()


#: Which events each rule condition can be true for (a condition on any other event is an error).
_CONDITION_EVENTS: dict[str, frozenset[str] | None] = {
    "actor_is_admin": None,
    "target": None,
    "target_is_bot": frozenset({"member_role_update"}),
    "gains_any": frozenset({"role_create", "role_update", "overwrite_create", "overwrite_update"}),
    "gains_dangerous": frozenset({"role_create", "role_update", "overwrite_create", "overwrite_update"}),
    "exceeds_ceiling": frozenset({"role_update"}),
    "role_is_jit": frozenset({"member_role_update", "role_update", "role_delete"}),
    "channel_is_private": frozenset(
        {"webhook_create", "webhook_update", "overwrite_create", "overwrite_update", "overwrite_delete"}
    ),
    "overwrite_target_broad": frozenset({"overwrite_create", "overwrite_update"}),
    "bot_dangerous": frozenset({"bot_add", "member_role_update"}),
    "mfa_lowered": frozenset({"guild_update"}),
    "verification_lowered": frozenset({"guild_update"}),
}


def _event_names() -> tuple[str, ...]:
    from bot.audit.names import EVENT_NAMES

    return EVENT_NAMES


class RuleCondition(_Model):
    """``when = { ... }``: every key given must hold for the rule to match (they are AND-ed).

    ``event`` is required (one name or a list). Boolean conditions match when the fact
    equals the value given (``actor_is_admin = false`` matches non-admins). A fact
    Warden cannot establish (an unknown channel, a role not in its cache) never
    matches, whichever value is asked for.
    """

    event: frozenset[str]
    actor_is_admin: StrictBool | None = None
    target: tuple[Target, ...] | None = None
    target_is_bot: StrictBool | None = None
    gains_any: frozenset[str] | None = None
    gains_dangerous: StrictBool | None = None
    exceeds_ceiling: StrictBool | None = None
    role_is_jit: StrictBool | None = None
    channel_is_private: StrictBool | None = None
    overwrite_target_broad: StrictBool | None = None
    bot_dangerous: StrictBool | None = None
    mfa_lowered: StrictBool | None = None
    verification_lowered: StrictBool | None = None

    @field_validator("event", mode="before")
    @classmethod
    def _events(cls, v: Any) -> Any:
        names = _event_names()
        items = _as_list(v)
        if not items:
            raise ValueError(f"must name at least one event; use one of: {', '.join(names)}")
        out, problems = set(), []
        for item in items:
            text = item.strip().lower() if isinstance(item, str) else None
            if text not in names:
                shown = _show(item)
                problems.append(f"{shown} is not a Warden event{_suggest(str(text or item), names)}")
            else:
                out.add(text)
        if problems:
            raise ValueError("\n".join(problems))
        return frozenset(out)

    @field_validator("gains_any", mode="before")
    @classmethod
    def _gains(cls, v: Any) -> Any:
        return None if v is None else _permission_names(v)

    @field_validator("target", mode="before")
    @classmethod
    def _targets(cls, v: Any) -> Any:
        return None if v is None else _each(v, _target)

    def conditions(self) -> dict[str, Any]:
        """The conditions set on this rule, besides ``event``."""
        return {k: getattr(self, k) for k in _CONDITION_EVENTS if getattr(self, k) is not None}


class Rule(_Model):
    """An audit-listener rule (``[[rule]]``): the first rule whose ``when`` matches decides."""

    id: str = Field(min_length=1, max_length=100)
    when: RuleCondition
    outcome: Literal["allow", "alert", "block", "approve"]
    controls: tuple[str, ...] = ()
    description: str = Field("", max_length=300)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}", v):
            raise ValueError(f"'{v}' is not a usable rule id; use letters, digits, '-', '_', '.' or ':'")
        return v

    @field_validator("when", mode="before")
    @classmethod
    def _check_when(cls, v: Any) -> Any:
        if isinstance(v, dict):
            event = v.get("event")
            if event is None or (isinstance(event, str) and not event.strip()):
                raise ValueError('needs an event, e.g. when = { event = "role_update", ... }')
        return v

    @field_validator("when")
    @classmethod
    def _check_applicable(cls, v: RuleCondition) -> RuleCondition:
        problems = []
        for key in v.conditions():
            applies = _CONDITION_EVENTS[key]
            if applies is not None and not (v.event & applies):
                problems.append(
                    _sub(
                        key,
                        f"never holds for {', '.join(sorted(v.event))}; it applies to: {', '.join(sorted(applies))}",
                    )
                )
        if problems:
            raise ValueError("\n".join(problems))
        return v

    @field_validator("controls", mode="before")
    @classmethod
    def _controls(cls, v: Any) -> Any:
        items = _as_list(v)
        bad = [i for i, c in enumerate(items) if not isinstance(c, str) or not c.strip()]
        if bad:
            raise ValueError(
                "\n".join(_sub(f"[{i}]", 'must be a control id such as "SOC2:CC6.3"') for i in bad)
            )
        return tuple(c.strip() for c in items)


class RuntimeSection(_Model):
    """Optional ``[warden]`` table: non-secret runtime settings (environment variables win)."""

    database_url: str | None = None
    signing_key_path: Path | None = None
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    health_port: StrictInt | None = Field(None, ge=1, le=65535)
    health_host: str | None = None

    @field_validator("database_url", "health_host")
    @classmethod
    def _check_setting(cls, v: str | None, info: ValidationInfo) -> str | None:
        """Checked as the environment variable for the same setting is (``bot.settings``)."""
        from bot.settings import database_url_problem, health_host_problem

        problem_of = {"database_url": database_url_problem, "health_host": health_host_problem}
        problem = None if v is None else problem_of[str(info.field_name)](v)
        if problem is not None:
            raise ValueError(problem)
        return v.strip() if v is not None and info.field_name == "health_host" else v

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_level(cls, v: Any) -> Any:
        levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        if isinstance(v, str) and v.strip().upper() in levels:
            return v.strip().upper()
        raise ValueError(f"{_show(v)} is not allowed; use one of: {', '.join(levels)}")


class AttestationPolicy(_Model):
    """Optional ``[attestation]`` table: owners vouch for what they own, on a schedule and on demand.

    Without the table there are no campaigns (``/warden attest start`` says how to turn them on).
    """

    # Declared before `every` and `reminder`, which are checked against it.
    deadline: Duration = dt.timedelta(days=7)
    every: Annotated[dt.timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))] = dt.timedelta(
        days=30
    )
    reminder: Annotated[dt.timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))] = (
        dt.timedelta(days=2)
    )
    on_missed: Literal["alert", "remediate"] = "alert"
    grace: Duration = dt.timedelta(days=7)
    include_standing_roles: StrictBool = False
    # A webhook with no activity for this long is reviewed on its own: its owner attests or it is
    # deleted at the review's deadline (restorable). "0s" (the default) turns the rule off.
    webhook_dormant_after: Annotated[
        dt.timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))
    ] = dt.timedelta(0)

    @field_validator("reminder")
    @classmethod
    def _reminder_before_deadline(cls, v: dt.timedelta, info: ValidationInfo) -> dt.timedelta:
        deadline = info.data.get("deadline")
        if deadline is not None and v >= deadline:
            raise ValueError(
                f"{format_duration(v)} is not before the deadline ({format_duration(deadline)}); "
                'the reminder is sent this long before the deadline, e.g. "2d" ("0s" = no reminder)'
            )
        return v

    @field_validator("every")
    @classmethod
    def _every_after_deadline(cls, v: dt.timedelta, info: ValidationInfo) -> dt.timedelta:
        deadline = info.data.get("deadline")
        if v and deadline is not None and v <= deadline:
            raise ValueError(
                f"{format_duration(v)} is not longer than the deadline ({format_duration(deadline)}); "
                'a campaign must end before the next starts, e.g. every = "30d" ("0s" = on demand only)'
            )
        return v


class Policy(_Model):
    guilds: tuple[GuildPolicy, ...]
    scopes: tuple[Scope, ...] = ()
    rules: tuple[Rule, ...] = ()
    attestation: AttestationPolicy | None = None
    runtime: RuntimeSection = RuntimeSection()
    source: str = "<config>"

    def guild_policy(self, guild_id: int, guild_name: str) -> GuildPolicy | None:
        """The guild's table: a match by id wins over a match by name."""
        for gp in self.guilds:
            if gp.key == str(guild_id):
                return gp
        for gp in self.guilds:
            if gp.matches(guild_id, guild_name):
                return gp
        return None

    def scopes_for(self, gp: GuildPolicy) -> list[Scope]:
        only = len(self.guilds) == 1
        return [s for s in self.scopes if s.guild == gp.key or (s.guild is None and only)]

    def scope(self, gp: GuildPolicy, scope_id: str) -> Scope | None:
        scopes = self.scopes_for(gp)
        for s in scopes:
            if s.id == scope_id:
                return s
        folded = scope_id.casefold()
        return next((s for s in scopes if s.id.casefold() == folded), None)


# --------------------------------------------------------------------------- error translation

_MISSING_HINTS: dict[str, str] = {
    "Scope.max_duration": 'every scope needs a maximum duration (e.g. "8h")',
    "AutoApprove.max_duration": 'how long an auto-approved grant may last (e.g. "1h")',
    "kind": "use one of: role, channel, token",
    "approvers": 'who may approve: role names or ids, or "user:<id>" (e.g. ["sec-leads"])',
    "requesters": 'who may request: role names or ids, user ids, or "@everyone" (e.g. ["engineers"])',
    "approvals_channel": "the channel (name or id) where approval cards are posted",
    "governance_channel": "the channel (name or id) where decisions are narrated",
    "members_of": "the role (name or id) whose members are auto-approved",
    "id": 'every rule needs an id, e.g. id = "admin-permission-added"',
    "when": 'every rule needs a condition, e.g. when = { event = "role_update" }',
    "outcome": "use one of: allow, alert, block, approve",
}


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    if part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}" if path else part


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that a location (without its last key) points into."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    for _ in range(5):
        origin = typing.get_origin(tp)
        if origin in (tuple, list, frozenset, set, typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else (args[0] if args else tp)
        elif origin is Annotated:
            tp = typing.get_args(tp)[0]
        else:
            break
    return tp


def _translate(exc: ValidationError, model: type[BaseModel], prefix: str) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            path = prefix
            for p in loc[:-1]:
                path = _join(path, p)
            key = str(loc[-1])
            if _is_secret_key(key):
                problems.append(f"{_join(path, key)}: {_SECRET_HINT}")
                continue
            sub = _model_at(model, loc[:-1])
            known = list(sub.model_fields) if sub else []
            known = [k for k in known if k not in ("id", "key") or sub is Rule]
            problems.append(f"{path}: unknown key '{key}'{_suggest(key, known)}")
            continue
        path = prefix
        for p in loc:
            path = _join(path, p)
        if kind == "missing":
            field = str(loc[-1]) if loc else ""
            owner = _model_at(model, loc[:-1])
            qualified = f"{owner.__name__}.{field}" if owner else field
            hint = _MISSING_HINTS.get(qualified) or _MISSING_HINTS.get(field)
            problems.append(f"{path}: missing" + (f"; {hint}" if hint else ""))
        elif kind == "literal_error":
            allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            problems.append(f"{path}: {_show(value)} is not allowed; use one of: {', '.join(allowed)}")
        elif kind == "value_error":
            message = str(ctx.get("error", err["msg"]))
            for line in message.splitlines():
                if line.startswith("@") and "\t" in line:
                    sub_path, line = line[1:].split("\t", 1)
                    problems.append(f"{_join(path, sub_path)}: {line}")
                else:
                    problems.append(f"{path}: {line}")
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            problems.append(f"{path}: {_show(value)} is not a whole number")
        elif kind in ("bool_type", "bool_parsing"):
            problems.append(f"{path}: {_show(value)} is not allowed; use true or false")
        elif kind in ("string_type",):
            problems.append(f"{path}: {_show(value)} is not text; write it in quotes")
        elif kind in ("greater_than_equal", "greater_than"):
            bound = ctx.get("ge", ctx.get("gt"))
            problems.append(f"{path}: {_show(value)} is too small; the smallest allowed is {bound}")
        elif kind in ("less_than_equal", "less_than"):
            bound = ctx.get("le", ctx.get("lt"))
            problems.append(f"{path}: {_show(value)} is too large; the largest allowed is {bound}")
        elif kind == "string_too_long":
            problems.append(f"{path}: too long; at most {ctx.get('max_length')} characters")
        elif kind == "string_too_short":
            problems.append(f"{path}: must not be empty")
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            problems.append(f"{path}: {_show(value)} is not allowed; expected a table {{ key = value, ... }}")
        elif kind in ("list_type", "tuple_type", "frozen_set_type", "set_type", "iterable_type"):
            problems.append(f'{path}: {_show(value)} is not allowed; expected a list such as ["a", "b"]')
        else:
            problems.append(f"{path}: {err['msg']}")
    return problems


def _validate(model: type[BaseModel], data: Any, prefix: str, problems: list[str]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems.extend(_translate(e, model, prefix))
        return None


# --------------------------------------------------------------------------- loading

_TOP_KEYS = ("guild", "scope", "rule", "warden", "attestation")


def _without_secrets(table: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    clean = {}
    for key, value in table.items():
        if _is_secret_key(key):
            problems.append(f"{_join(path, key)}: {_SECRET_HINT}")
        else:
            clean[key] = value
    return clean


def _tables(data: dict[str, Any], name: str, what: str, problems: list[str]) -> dict[str, dict[str, Any]]:
    """``[name.<key>]`` tables, with a clear error for anything else."""
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        problems.append(f"{name}: expected [{name}.<{what}>] tables, got {_show(raw)}")
        return {}
    out = {}
    for key, value in raw.items():
        if not isinstance(value, dict):
            problems.append(
                f"{name}.{key}: {_show(value)} is not a table; settings go under [{name}.<{what}>], "
                f"e.g. [{name}.example]"
            )
            continue
        out[str(key)] = value
    return out


def parse_policy(data: dict[str, Any], source: str = "<config>") -> Policy:
    """Validate already-parsed TOML data; raise :class:`PolicyError` with every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise PolicyError([f"{source}: the policy must be a TOML document (a table)"], source)

    for key in data:
        if key in _TOP_KEYS:
            continue
        if _is_secret_key(key):
            problems.append(f"{key}: {_SECRET_HINT}")
        else:
            problems.append(
                f"unknown top-level key '{key}'{_suggest(key, _TOP_KEYS)} "
                f"(allowed: [guild.<name>], [scope.<id>], [[rule]], [warden], [attestation])"
            )

    # [warden]
    runtime = RuntimeSection()
    raw_runtime = data.get("warden", {})
    if not isinstance(raw_runtime, dict):
        problems.append(f"warden: expected a [warden] table, got {_show(raw_runtime)}")
    else:
        runtime = _validate(
            RuntimeSection, _without_secrets(raw_runtime, "warden", problems), "warden", problems
        )

    # [guild.*]
    guilds: list[GuildPolicy] = []
    raw_guilds = _tables(data, "guild", "name or id", problems)
    if not raw_guilds and not any(p.startswith("guild") for p in problems):
        problems.append("guild: missing; configure at least one [guild.<name or id>] table")
    seen: dict[str, str] = {}
    for key, table in raw_guilds.items():
        path = f"guild.{key}"
        folded = key.strip().casefold()
        if not folded:
            problems.append(f"{path}: the guild key must be the guild's name or id, not empty")
            continue
        if folded in seen:
            problems.append(f"{path}: the same guild as guild.{seen[folded]} (names are case-insensitive)")
            continue
        seen[folded] = key
        table = _without_secrets(table, path, problems)
        if "key" in table:
            problems.append(f"{path}: unknown key 'key'")
            table = {k: v for k, v in table.items() if k != "key"}
        gp = _validate(GuildPolicy, {**table, "key": key}, path, problems)
        if gp is not None:
            guilds.append(gp)
    guild_keys = list(raw_guilds)

    # [scope.*]
    scopes: list[Scope] = []
    for key, table in _tables(data, "scope", "id", problems).items():
        path = f"scope.{key}"
        table = _without_secrets(table, path, problems)
        if "id" in table:
            problems.append(f"{path}: unknown key 'id'; the scope's id is its table name ({key})")
            table = {k: v for k, v in table.items() if k != "id"}
        table = dict(table)
        raw_guild = table.get("guild")
        if raw_guild is None:
            if len(guild_keys) > 1:
                problems.append(
                    f"{path}.guild: missing; more than one guild is configured, so say which one "
                    f"({', '.join(guild_keys)})"
                )
            elif len(guild_keys) == 1:
                table["guild"] = guild_keys[0]
        elif isinstance(raw_guild, str | int) and not isinstance(raw_guild, bool) and str(raw_guild).strip():
            wanted = str(raw_guild).strip().casefold()
            match = next((g for g in guild_keys if g.strip().casefold() == wanted), None)
            if match is None:
                problems.append(
                    f"{path}.guild: {_show(raw_guild)} is not a configured guild; "
                    f"configured: {', '.join(guild_keys) or '(none)'}"
                )
                table.pop("guild")
            else:
                table["guild"] = match
        scope = _validate(Scope, {"id": key, **table}, path, problems)
        if scope is not None:
            scopes.append(scope)

    # [[rule]]
    rules: list[Rule] = []
    raw_rules = data.get("rule", [])
    if isinstance(raw_rules, dict):
        problems.append("rule: write rules as [[rule]] tables (an array of tables), each with an id")
        raw_rules = []
    elif not isinstance(raw_rules, list):
        problems.append(f"rule: expected [[rule]] tables, got {_show(raw_rules)}")
        raw_rules = []
    rule_ids: dict[str, int] = {}
    for i, table in enumerate(raw_rules):
        path = f"rule[{i}]"
        if not isinstance(table, dict):
            problems.append(f"{path}: expected a [[rule]] table, got {_show(table)}")
            continue
        rid = table.get("id")
        if isinstance(rid, str) and rid:
            if rid in rule_ids:
                problems.append(
                    f"{path}.id: '{rid}' is already used by rule[{rule_ids[rid]}]; rule ids must be unique"
                )
            else:
                rule_ids[rid] = i
        rule = _validate(Rule, table, path, problems)
        if rule is not None:
            rules.append(rule)

    # [attestation]
    attestation: AttestationPolicy | None = None
    raw_attestation = data.get("attestation")
    if raw_attestation is not None:
        if not isinstance(raw_attestation, dict):
            problems.append(f"attestation: expected an [attestation] table, got {_show(raw_attestation)}")
        else:
            attestation = _validate(
                AttestationPolicy,
                _without_secrets(raw_attestation, "attestation", problems),
                "attestation",
                problems,
            )

    if problems:
        raise PolicyError(problems, source)
    return Policy(
        guilds=tuple(guilds),
        scopes=tuple(scopes),
        rules=tuple(rules),
        attestation=attestation,
        runtime=runtime,
        source=source,
    )


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raise :class:`PolicyError` listing every problem."""
    p = Path(path)
    source = str(p)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            [f"{source}: file not found; copy config.example.toml to start, or set WARDEN_CONFIG"], source
        ) from None
    except OSError as e:
        raise PolicyError([f"{source}: cannot be read: {e.strerror or e}"], source) from None
    except ValueError:  # a path no file system accepts, e.g. with a NUL character
        raise PolicyError(
            [f"{source!r}: not a usable file name; give the path of a config.toml"], source
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError([f"{source}: not UTF-8 text (byte {e.start})"], source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError([f"{source}: invalid TOML: {e}"], source) from None
    return parse_policy(data, source)


class PinRow(Protocol):
    """A stored pin (``bot.db.models.GuildPin``): the guild id a ``[guild.<name>]`` table belongs to."""

    key: str
    guild_id: int
    guild_name: str
    confirmed_by: int | None


def pin_key(gp: GuildPolicy) -> str:
    """How a name-keyed table is stored in the pins (table names match without case)."""
    return gp.key.casefold()


class GuildDirectory:
    """Which policy table each guild uses, by guild id.

    A table keyed by a guild id (``[guild."123..."]``) is that guild's, always. A table keyed by a
    name is pinned to one guild id the first time exactly one guild with that name is seen
    (``first_sight``; the client stores the pin in the database), and from then on it is matched by
    that id alone: a rename keeps the policy, and another guild with the same name never gets it.
    When two guilds with the name are seen at once, neither is pinned and both get no policy.
    """

    def __init__(
        self, policy: Policy, stored_pins: Callable[[], Awaitable[Iterable[PinRow]]] | None = None
    ) -> None:
        self.policy = policy
        self._stored_pins = stored_pins  # reads the pins from the database (none: no pins)
        self._names: dict[int, str] = {}
        self._pins: dict[str, PinRow] = {}
        self._ambiguous: dict[str, tuple[int, ...]] = {}

    def _by_id(self, guild_id: int) -> GuildPolicy | None:
        return next((gp for gp in self.policy.guilds if gp.key == str(guild_id)), None)

    def _by_name(self) -> list[GuildPolicy]:
        return [gp for gp in self.policy.guilds if not gp.key.isdigit()]

    def load_pins(self, pins: Iterable[PinRow]) -> None:
        """Replace the pins known here with the stored ones."""
        self._pins = {pin.key: pin for pin in pins}

    async def refresh(self) -> None:
        """Re-read the stored pins (another process, or ``/warden pin``, may have written one)."""
        if self._stored_pins is not None:
            self.load_pins(await self._stored_pins())

    def first_sight(self, guilds: Iterable[tuple[int, str]]) -> list[tuple[GuildPolicy, int, str]]:
        """The name-keyed tables that the guilds seen now (id, name) pin: one guild each.

        A guild keyed by id, or pinned already, pins nothing more; two or more guilds with the
        table's name pin none of them (``explain`` says so) until only one remains.
        """
        seen = list(guilds)
        pinned = {pin.guild_id for pin in self._pins.values()}
        out: list[tuple[GuildPolicy, int, str]] = []
        for gp in self._by_name():
            key = pin_key(gp)
            if key in self._pins:
                continue
            candidates = [
                (gid, name)
                for gid, name in seen
                if (name or "").casefold() == key and gid not in pinned and self._by_id(gid) is None
            ]
            if len(candidates) > 1:
                self._ambiguous[key] = tuple(sorted(gid for gid, _ in candidates))
                continue
            self._ambiguous.pop(key, None)
            if candidates:
                out.append((gp, *candidates[0]))
        return out

    def bind(self, guild_id: int, name: str) -> GuildPolicy | None:
        """Remember the guild's current name (for logs and texts); its policy, if any."""
        self._names[guild_id] = name
        return self.get(guild_id)

    def get(self, guild_id: int) -> GuildPolicy | None:
        gp = self._by_id(guild_id)
        if gp is not None:
            return gp
        return next(
            (
                gp
                for gp in self._by_name()
                if (pin := self._pins.get(pin_key(gp))) is not None and pin.guild_id == guild_id
            ),
            None,
        )

    def pin(self, guild_id: int) -> tuple[GuildPolicy, PinRow] | None:
        """The name-keyed table pinned to this guild, with its pin (None: keyed by id, or none)."""
        if self._by_id(guild_id) is not None:
            return None
        gp = self.get(guild_id)
        return (gp, self._pins[pin_key(gp)]) if gp is not None else None

    def explain(self, guild_id: int, name: str, *, show: Callable[[str], str] = str) -> str | None:
        """Why a guild whose name a table uses gets no policy, and how to fix it (None otherwise).

        ``show`` renders guild names (the doctor escapes them for Discord; logs print them as they are).
        """
        if self.get(guild_id) is not None:
            return None
        for gp in self._by_name():
            key = pin_key(gp)
            if key != (name or "").casefold():
                continue
            fix = (
                f'if this server is the right one, key the table by its id in config.toml — [guild."{guild_id}"] '
                f"instead of [guild.{gp.key}] (ids always win) — and restart Warden"
            )
            pin = self._pins.get(key)
            if pin is not None:
                return (
                    f"[guild.{gp.key}] is pinned to another server, '{show(pin.guild_name)}' (id {pin.guild_id}), "
                    f"which Warden saw first; this server '{show(name)}' (id {guild_id}) gets no policy; {fix}"
                )
            ambiguous = self._ambiguous.get(key)
            if ambiguous:
                ids = ", ".join(str(i) for i in ambiguous)
                return (
                    f"{len(ambiguous)} servers are named '{gp.key}' (ids {ids}), so [guild.{gp.key}] is "
                    f"pinned to none of them and none gets a policy; {fix}"
                )
        return None

    def name(self, guild_id: int) -> str:
        return self._names.get(guild_id, str(guild_id))

    def scopes(self, guild_id: int) -> list[Scope]:
        gp = self.get(guild_id)
        return self.policy.scopes_for(gp) if gp else []

    def scope(self, guild_id: int, scope_id: str) -> Scope | None:
        gp = self.get(guild_id)
        return self.policy.scope(gp, scope_id.strip()) if gp else None


# --------------------------------------------------------------------------- review (check-config)

_MENTION = re.compile(r"^<(@&|@!?|#)(\d+)>$")
_MENTION_KIND = {"@&": "role", "@": "user", "@!": "user", "#": "channel"}


def _ref_problem(path: str, ref: object) -> str | None:
    """A reference that loads but can never match anything in Discord."""
    if isinstance(ref, bool):
        return None
    text = str(ref).strip()
    mention = _MENTION.match(text)
    if mention:
        kind = _MENTION_KIND[mention.group(1)]
        return (
            f"{path}: '{text}' is Discord {kind} mention syntax; write the bare id {mention.group(2)} "
            "(or the name)"
        )
    if isinstance(ref, int) or text.isdigit():
        digits = len(text.lstrip("0") or "0")
        if not 17 <= digits <= 20:
            return (
                f"{path}: {text} is too {'short' if digits < 17 else 'long'} to be a Discord id "
                "(ids have 17 to 20 digits); copy it with Developer Mode → right-click → Copy ID"
            )
    return None


def review_policy(policy: Policy) -> list[str]:
    """Mistakes that load but can never work; ``warden check-config`` reports each one.

    Ids too short to be Discord snowflakes, mention syntax (``<@&123>``) where a bare id or a name
    belongs, and scope ids differing only by case (commands match scopes case-insensitively).
    """
    problems: list[str] = []

    def check(path: str, ref: object) -> None:
        if ref is None or ref == "@everyone":
            return
        problem = _ref_problem(path, ref)
        if problem:
            problems.append(problem)

    for gp in policy.guilds:
        base = f"guild.{gp.key}"
        check(f"{base} (the table name)", gp.key)
        check(f"{base}.approvals_channel", gp.approvals_channel)
        check(f"{base}.governance_channel", gp.governance_channel)
        check(f"{base}.ping_role", gp.ping_role)
    seen: dict[str, str] = {}
    for scope in policy.scopes:
        base = f"scope.{scope.id}"
        folded = scope.id.casefold()
        if folded in seen:
            problems.append(
                f"{base}: differs from scope.{seen[folded]} only by case; commands match scope names "
                "without case, so rename one"
            )
        else:
            seen[folded] = scope.id
        check(f"{base}.role", scope.role)
        check(f"{base}.channel", scope.channel)
        for i, approver in enumerate(scope.approvers):
            check(f"{base}.approvers[{i}]", approver.ref)
        for i, ref in enumerate(scope.requesters):
            check(f"{base}.requesters[{i}]", ref)
        for i, auto in enumerate(scope.auto_approve):
            check(f"{base}.auto_approve[{i}].members_of", auto.members_of)
        problems.extend(_unreachable_for_approvers(scope))
    return problems


def _unreachable_for_approvers(scope: Scope) -> list[str]:
    """Approvers named only as users, one of whom may also ask: their own vote never counts, so
    their request needs the quorum from the others alone."""
    if scope.self_approval or not all(a.kind == "user" for a in scope.approvers):
        return []
    users = {str(a.ref) for a in scope.approvers}
    need = scope.approvals_required
    return [
        f"scope.{scope.id}.approvals_required: when <@{ref}> asks, {need} approval(s) can never be "
        f"reached: their own vote does not count and only {len(users) - 1} other approver(s) are named; "
        "add an approver (or a role) or lower approvals_required"
        for ref in scope.requesters
        if str(ref) in users and len(users) - 1 < need
    ]
