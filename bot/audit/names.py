"""Warden's audit event names and how Discord's audit-log action types map onto them.

No imports from the rest of Warden: :mod:`bot.policy` validates rule conditions
against these names.
"""

from __future__ import annotations

from typing import Final

#: The events a ``[[rule]]`` may name, in the order the documentation lists them.
EVENT_NAMES: Final[tuple[str, ...]] = (
    "bot_add",
    "bot_remove",
    "integration_create",
    "integration_update",
    "integration_delete",
    "role_create",
    "role_update",
    "role_delete",
    "member_role_update",
    "channel_create",
    "channel_update",
    "channel_delete",
    "overwrite_create",
    "overwrite_update",
    "overwrite_delete",
    "webhook_create",
    "webhook_update",
    "webhook_delete",
    "application_command_permission_update",
    "guild_update",
    "unclassified",
)

#: Discord AuditLogEvent number → Warden event name (member_kick is special-cased: only bots).
ACTION_TYPES: Final[dict[int, str]] = {
    1: "guild_update",
    10: "channel_create",
    11: "channel_update",
    12: "channel_delete",
    13: "overwrite_create",
    14: "overwrite_update",
    15: "overwrite_delete",
    25: "member_role_update",
    28: "bot_add",
    30: "role_create",
    31: "role_update",
    32: "role_delete",
    50: "webhook_create",
    51: "webhook_update",
    52: "webhook_delete",
    80: "integration_create",
    81: "integration_update",
    82: "integration_delete",
    121: "application_command_permission_update",
}
MEMBER_KICK: Final = 20

#: Action types Discord documents that carry nothing about access (messages, emoji, voice,
#: invites, stickers, scheduled events, threads, automod, soundboard …). They are skipped:
#: not an unclassified event, not a ledger entry. Anything else Warden does not know is
#: ``unclassified``.
IGNORED_ACTION_TYPES: Final[frozenset[int]] = frozenset(
    {
        20, 21, 22, 23, 24, 26, 27,  # member kick (humans) / prune / ban / update / voice
        40, 41, 42,  # invites
        60, 61, 62,  # emoji
        72, 73, 74, 75,  # messages
        83, 84, 85,  # stage instances
        90, 91, 92,  # stickers
        100, 101, 102,  # scheduled events
        110, 111, 112,  # threads
        130, 131, 132,  # soundboard
        140, 141, 142, 143, 144, 145, 146,  # automod
        150, 151,  # creator monetisation
        163, 164, 165, 166, 167,  # onboarding
        190, 191,  # home settings
    }
)  # fmt: skip

#: Permissions that let their holder take over or wreck a guild. A role gaining one, an
#: overwrite granting one, or a bot holding one is what the default rules watch for.
DANGEROUS_PERMISSIONS: Final[frozenset[str]] = frozenset(
    {
        "administrator",
        "manage_guild",
        "manage_roles",
        "manage_channels",
        "manage_webhooks",
        "ban_members",
        "kick_members",
        "moderate_members",
        "manage_expressions",
        "mention_everyone",
    }
)

#: Discord's MFA level for moderation actions (0 none, 1 elevated).
MFA_NONE: Final = 0
