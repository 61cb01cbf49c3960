"""In-memory fakes of the audit room's Protocols, and raw audit-log payload builders."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bot.audit.actions import RevertAction
from bot.audit.decision import AuditDecision, BurstSummary
from bot.policy import parse_policy, permissions_from_names

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


def policy(**extra: Any):  # type: ignore[no-untyped-def]
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
