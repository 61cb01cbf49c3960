"""A raw audit-log entry → one :class:`AuditEvent`.

The gateway's ``GUILD_AUDIT_LOG_ENTRY_CREATE`` payload and each entry of
``GET /guilds/{id}/audit-logs`` have the same shape (Discord's
``AuditLogEntryResponse``; discord.py ``types/audit_log.AuditLogEntry``), so live
events and catch-up go through :func:`event_from_payload` alone.

Normalising never raises: an unknown action type, a missing id or a malformed
change gives an ``unclassified`` event that says what was wrong, so one odd entry
never stops the listener.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.audit.names import ACTION_TYPES, IGNORED_ACTION_TYPES, MEMBER_KICK
from bot.policy import permission_names

DISCORD_EPOCH_MS = 1420070400000
_SNOWFLAKE_MAX = 2**64 - 1

TargetType = Literal[
    "guild", "channel", "role", "member", "bot", "webhook", "integration", "command", "unknown"
]

_TARGET_TYPES: dict[str, TargetType] = {
    "guild_update": "guild",
    "channel_create": "channel",
    "channel_update": "channel",
    "channel_delete": "channel",
    "overwrite_create": "channel",
    "overwrite_update": "channel",
    "overwrite_delete": "channel",
    "member_role_update": "member",
    "bot_add": "bot",
    "bot_remove": "bot",
    "role_create": "role",
    "role_update": "role",
    "role_delete": "role",
    "webhook_create": "webhook",
    "webhook_update": "webhook",
    "webhook_delete": "webhook",
    "integration_create": "integration",
    "integration_update": "integration",
    "integration_delete": "integration",
    "application_command_permission_update": "command",
}


@dataclass(frozen=True)
class Change:
    """One ``changes[]`` item: a key with its value before and after (JSON values as sent)."""

    key: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class AuditEvent:
    """One audit-log entry in Warden's words.

    ``action`` is a Warden event name (:data:`bot.audit.names.EVENT_NAMES`), or
    ``"ignored"`` for action types that carry nothing about access. Permission
    fields are names (``view_channel``), computed from the role's ``permissions``
    or the overwrite's ``allow`` bits before and after.
    """

    entry_id: int
    guild_id: int | None
    action: str
    action_type: int | None = None
    actor_id: int | None = None
    target_id: int | None = None
    target_type: TargetType = "unknown"
    changes: tuple[Change, ...] = ()
    permissions_before: int | None = None
    permissions_after: int | None = None
    deny_before: int | None = None
    deny_after: int | None = None
    permissions_gained: frozenset[str] = frozenset()
    permissions_lost: frozenset[str] = frozenset()
    roles_added: tuple[int, ...] = ()
    roles_removed: tuple[int, ...] = ()
    channel_id: int | None = None
    overwrite_target_type: Literal["role", "member"] | None = None
    overwrite_target_id: int | None = None
    reason: str | None = None
    created_at: dt.datetime | None = None
    #: Why the entry could not be classified (``action == "unclassified"`` only).
    problem: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    #: "audit_log": read from Discord's audit log; "state": found by the start-up state comparison
    #: (the change happened while nobody watched and its entry may be gone; ``entry_id`` is 0).
    source: Literal["audit_log", "state"] = "audit_log"

    @property
    def classified(self) -> bool:
        return self.action not in ("unclassified", "ignored")

    def change(self, key: str) -> Change | None:
        return next((c for c in self.changes if c.key == key), None)

    def proof(self) -> dict[str, Any]:
        """The facts a narrative shows (keys follow :mod:`bot.decisions.narrative`'s conventions)."""
        out: dict[str, Any] = {"event": self.action}
        if self.entry_id:
            out["audit_log_entry"] = str(self.entry_id)
        if self.source == "state":
            out["found_by"] = "start-up state comparison (no audit-log entry)"
        if self.actor_id is not None:
            out["actor_id"] = self.actor_id
        if self.target_id is not None:
            key = {"role": "target_role_id", "member": "member_id", "bot": "bot_id", "channel": "channel_id"}
            out[key.get(self.target_type, "target")] = (
                self.target_id if self.target_type in key else str(self.target_id)
            )
        if self.channel_id is not None and self.target_type != "channel":
            out["channel_id"] = self.channel_id
        if self.overwrite_target_id is not None:
            out["overwrite_for"] = (
                f"<@&{self.overwrite_target_id}>"
                if self.overwrite_target_type == "role"
                else f"<@{self.overwrite_target_id}>"
            )
        if self.roles_added:
            out["added_role_ids"] = list(self.roles_added)
        if self.roles_removed:
            out["removed_role_ids"] = list(self.roles_removed)
        if self.permissions_gained:
            out["permissions_gained"] = sorted(self.permissions_gained)
        if self.permissions_lost:
            out["permissions_lost"] = sorted(self.permissions_lost)
        before = {c.key: c.before for c in self.changes if c.before is not None and _plain(c.before)}
        after = {c.key: c.after for c in self.changes if c.after is not None and _plain(c.after)}
        if before:
            out["before"] = before
        if after:
            out["after"] = after
        if self.reason:
            out["audit_reason"] = self.reason
        if self.created_at is not None:
            out["changed_at"] = self.created_at.isoformat()
        if self.problem:
            out["problem"] = self.problem
        return out


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def snowflake(value: Any) -> int | None:
    """A Discord id from an int or a string of digits; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= _SNOWFLAKE_MAX else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
        return number if 0 < number <= _SNOWFLAKE_MAX else None
    return None


def snowflake_time(entry_id: int) -> dt.datetime:
    """When Discord created the thing with this id (ids embed their creation time)."""
    ms = (entry_id >> 22) + DISCORD_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _bits(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 24:
        return int(value)
    return None


def _role_ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    ids = []
    for item in value:
        rid = snowflake(item.get("id")) if isinstance(item, Mapping) else None
        if rid is not None:
            ids.append(rid)
    return tuple(ids)


def _changes(raw: Any) -> tuple[Change, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("changes is not a list")
    out = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise ValueError("a change has no key")
        out.append(Change(key=item["key"], before=item.get("old_value"), after=item.get("new_value")))
    return tuple(out)


def _unclassified(entry_id: int, guild_id: int | None, problem: str, **known: Any) -> AuditEvent:
    return AuditEvent(entry_id=entry_id, guild_id=guild_id, action="unclassified", problem=problem, **known)


def event_from_payload(
    payload: Any,
    *,
    guild_id: int | None = None,
    is_bot: Callable[[int], bool | None] | None = None,
) -> AuditEvent:
    """Normalise one raw entry. Never raises.

    ``guild_id`` is needed for REST entries (the gateway payload carries its own).
    ``is_bot`` tells a kicked bot (``bot_remove``) from a kicked member (ignored);
    without it a kick is ignored.
    """
    try:
        return _normalise(payload, guild_id, is_bot)
    except Exception as exc:  # never stop the listener on one odd entry
        entry_id = snowflake(payload.get("id")) if isinstance(payload, Mapping) else None
        return _unclassified(entry_id or 0, guild_id, f"malformed entry: {type(exc).__name__}")


def _normalise(payload: Any, guild_id: int | None, is_bot: Callable[[int], bool | None] | None) -> AuditEvent:
    if not isinstance(payload, Mapping):
        return _unclassified(0, guild_id, "the entry is not an object")
    gid = snowflake(payload.get("guild_id")) or guild_id
    entry_id = snowflake(payload.get("id"))
    if entry_id is None:
        return _unclassified(0, gid, "the entry has no id")
    created_at = snowflake_time(entry_id)
    actor_id = snowflake(payload.get("user_id"))
    target_id = snowflake(payload.get("target_id"))
    raw_reason = payload.get("reason")
    reason = raw_reason if isinstance(raw_reason, str) else None
    known: dict[str, Any] = {
        "actor_id": actor_id,
        "target_id": target_id,
        "reason": reason,
        "created_at": created_at,
    }
    action_type = payload.get("action_type")
    if isinstance(action_type, bool) or not isinstance(action_type, int):
        return _unclassified(entry_id, gid, "the entry has no action type", **known)
    known["action_type"] = action_type
    try:
        changes = _changes(payload.get("changes"))
    except ValueError as exc:
        return _unclassified(entry_id, gid, str(exc), **known)
    raw_options = payload.get("options")
    options: dict[str, str] = {}
    if isinstance(raw_options, Mapping):
        options = {str(k): str(v) for k, v in raw_options.items() if isinstance(v, str | int)}
    known["changes"] = changes
    known["options"] = tuple(sorted(options.items()))

    if action_type == MEMBER_KICK:
        bot = is_bot(target_id) if (is_bot is not None and target_id is not None) else None
        action = "bot_remove" if bot else "ignored"
    elif action_type in ACTION_TYPES:
        action = ACTION_TYPES[action_type]
    elif action_type in IGNORED_ACTION_TYPES:
        action = "ignored"
    else:
        return _unclassified(entry_id, gid, f"unknown action type {action_type}", **known)
    if action == "ignored":
        return AuditEvent(entry_id=entry_id, guild_id=gid, action="ignored", **known)
    if gid is None:
        return _unclassified(entry_id, None, "the entry names no guild", **known)
    if actor_id is None and action != "application_command_permission_update":
        return _unclassified(entry_id, gid, "the entry names no actor", **known)
    if target_id is None and action not in ("guild_update",):
        return _unclassified(entry_id, gid, "the entry names no target", **known)

    by_key = {c.key: c for c in changes}
    extra: dict[str, Any] = {}
    if action.startswith("role_"):
        perms = by_key.get("permissions")
        before = _bits(perms.before) if perms else None
        after = _bits(perms.after) if perms else None
        if action == "role_update" and perms is not None and (before is None or after is None):
            return _unclassified(entry_id, gid, "a role update without readable permission bits", **known)
        extra |= _gains(before, after)
    elif action.startswith("overwrite_"):
        kind = options.get("type")
        ow_target = snowflake(options.get("id"))
        if ow_target is None or kind not in ("0", "1", "role", "member"):
            return _unclassified(entry_id, gid, "an overwrite change that names no role or member", **known)
        allow, deny = by_key.get("allow"), by_key.get("deny")
        before = _bits(allow.before) if allow else None
        after = _bits(allow.after) if allow else None
        extra |= _gains(before, after)
        extra |= {
            "channel_id": target_id,
            "overwrite_target_type": "role" if kind in ("0", "role") else "member",
            "overwrite_target_id": ow_target,
            "deny_before": _bits(deny.before) if deny else None,
            "deny_after": _bits(deny.after) if deny else None,
        }
    elif action == "member_role_update":
        added = _role_ids(by_key["$add"].after) if "$add" in by_key else ()
        removed = _role_ids(by_key["$remove"].after) if "$remove" in by_key else ()
        extra |= {"roles_added": added, "roles_removed": removed}
    elif action.startswith("channel_"):
        extra["channel_id"] = target_id
    elif action.startswith("webhook_"):
        ch = by_key.get("channel_id")
        channel = snowflake(ch.after if ch and ch.after is not None else ch.before if ch else None)
        extra["channel_id"] = channel or snowflake(options.get("channel_id"))
    elif action == "guild_update" and target_id is None:
        known["target_id"] = gid
    return AuditEvent(
        entry_id=entry_id,
        guild_id=gid,
        action=action,
        target_type=_TARGET_TYPES.get(action, "unknown"),
        **known,
        **extra,
    )


def _gains(before: int | None, after: int | None) -> dict[str, Any]:
    b, a = before or 0, after or 0
    return {
        "permissions_before": before,
        "permissions_after": after,
        "permissions_gained": frozenset(permission_names(a & ~b)),
        "permissions_lost": frozenset(permission_names(b & ~a)),
    }
