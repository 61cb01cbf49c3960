"""The default rule set, shipped in the package and documented in docs/rules.md.

How it combines with the policy: the policy's ``[[rule]]``s are evaluated first,
in file order, then these defaults in the order below; the first rule that matches
decides. A policy rule with the same id as a default *replaces* that default (so
``id = "jit-role-by-hand"`` with ``outcome = "approve"`` turns reverting a
hand-given JIT role into adopting it as a pending request), and any other policy
rule that matches first wins over the defaults (write an ``allow`` rule to carve
out an exception). An event no rule matches is allowed and recorded in the ledger
as ``no-rule-matched``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.audit.names import WRITE_OR_MANAGE_PERMISSIONS
from bot.policy import Policy, Rule

#: Permissions whose addition to a role the defaults treat as privilege escalation.
ESCALATING = (
    "administrator",
    "manage_guild",
    "manage_roles",
    "manage_channels",
    "manage_webhooks",
    "ban_members",
    "kick_members",
)
PERMISSION_EVENTS = (
    "role_create",
    "role_update",
    "role_delete",
    "member_role_update",
    "overwrite_create",
    "overwrite_update",
    "overwrite_delete",
    "application_command_permission_update",
)

_DEFAULTS: tuple[dict[str, Any], ...] = (
    {
        "id": "jit-role-by-hand",
        "description": "A JIT-managed role is only ever given by Warden, through an approved request.",
        "when": {"event": "member_role_update", "role_is_jit": True},
        "outcome": "block",
        "controls": ["SOC2:CC6.2", "SOC2:CC6.3", "ISO27001:A.5.18"],
    },
    {
        "id": "role-above-ceiling",
        "description": "A JIT-managed role must never hold more than its scope's permission ceiling.",
        "when": {"event": "role_update", "exceeds_ceiling": True},
        "outcome": "block",
        "controls": ["SOC2:CC6.3", "ISO27001:A.8.2"],
    },
    {
        "id": "dangerous-permission-by-non-admin",
        "description": "Only the policy's admins may give a role administrative or moderation permissions.",
        "when": {
            "event": ["role_create", "role_update"],
            "gains_any": list(ESCALATING),
            "actor_is_admin": False,
        },
        "outcome": "block",
        "controls": ["SOC2:CC6.3", "ISO27001:A.8.2"],
    },
    {
        "id": "dangerous-permission-added",
        "description": "A role gained administrative or moderation permissions.",
        "when": {"event": ["role_create", "role_update"], "gains_any": list(ESCALATING)},
        "outcome": "alert",
        "controls": ["SOC2:CC6.3", "SOC2:CC8.1", "ISO27001:A.8.2"],
    },
    {
        "id": "dangerous-bot-quarantined",
        "description": "A bot with administrative or moderation permissions is quarantined until approvers approve it.",
        "when": {"event": "bot_add", "bot_dangerous": True},
        "outcome": "approve",
        "controls": ["SOC2:CC6.2", "ISO27001:A.5.18", "ISO27001:A.8.2"],
    },
    {
        "id": "bot-added",
        "description": "A bot joined the server.",
        "when": {"event": "bot_add"},
        "outcome": "alert",
        "controls": ["SOC2:CC6.2", "ISO27001:A.5.16"],
    },
    {
        "id": "webhook-in-private-channel",
        "description": "A webhook in a private channel lets anyone holding its URL post there; none may be created outside Warden.",
        "when": {"event": "webhook_create", "channel_is_private": True},
        "outcome": "block",
        "controls": ["SOC2:CC6.1", "ISO27001:A.5.15"],
    },
    {
        "id": "webhook-by-non-admin",
        "description": "Webhooks are created by the policy's admins.",
        "when": {"event": "webhook_create", "actor_is_admin": False},
        "outcome": "alert",
        "controls": ["SOC2:CC6.1", "SOC2:CC7.2", "ISO27001:A.8.16"],
    },
    {
        "id": "overwrite-opens-channel",
        "description": "@everyone or a broad role must not be given write or manage permissions on a channel.",
        "when": {
            "event": ["overwrite_create", "overwrite_update"],
            "overwrite_target_broad": True,
            "gains_any": sorted(WRITE_OR_MANAGE_PERMISSIONS),
        },
        "outcome": "block",
        "controls": ["SOC2:CC6.1", "SOC2:CC6.3", "ISO27001:A.5.15"],
    },
    {
        "id": "permission-change-by-non-admin",
        "description": "Permissions are changed by the policy's admins (or through Warden).",
        "when": {"event": list(PERMISSION_EVENTS), "actor_is_admin": False},
        "outcome": "alert",
        "controls": ["SOC2:CC8.1", "SOC2:CC7.2", "ISO27001:A.8.16"],
    },
    {
        "id": "mfa-lowered",
        "description": "The server's MFA requirement for moderators was lowered (only the owner can restore it).",
        "when": {"event": "guild_update", "mfa_lowered": True},
        "outcome": "alert",
        "controls": ["SOC2:CC6.1", "ISO27001:A.5.16"],
    },
)

DEFAULT_RULES: tuple[Rule, ...] = tuple(Rule.model_validate(r) for r in _DEFAULTS)


def effective_rules(
    policy_rules: Iterable[Rule], defaults: Iterable[Rule] = DEFAULT_RULES
) -> tuple[Rule, ...]:
    """Policy rules in file order, then the defaults the policy did not replace (by id)."""
    own = tuple(policy_rules)
    replaced = {r.id for r in own}
    return own + tuple(r for r in defaults if r.id not in replaced)


def active_rules_summary(policy: Policy) -> str:
    """What ``check-config`` and ``warden run`` say about the audit rules that will run."""
    rules = effective_rules(policy.rules)
    own = len(policy.rules)
    parts = []
    if own:
        parts.append(f"{own} from the policy: {', '.join(r.id for r in policy.rules)}")
    defaults = len(rules) - own
    parts.append(f"{defaults} default{'s' if defaults != 1 else ''} (docs/rules.md)")
    n = len(rules)
    return f"{n} audit rule{'s' if n != 1 else ''} active ({'; '.join(parts)})"
