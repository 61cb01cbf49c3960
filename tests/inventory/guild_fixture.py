"""A discord.py guild built from raw gateway payloads: roles, channels with role and member overwrites."""

from __future__ import annotations

import datetime as dt
from typing import Any

import discord
from discord.state import ConnectionState

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


def _ow(target: int, kind: int, allow: int = 0, deny: int = 0) -> dict[str, Any]:
    return {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}


ROLE, MEMBER = 0, 1
CHANNELS: list[dict[str, Any]] = [
    {"id": GENERAL, "type": 0, "overwrites": []},
    {
        # private: @everyone cannot see; DEV may; MUTED denied send; Bob's own overwrite gives send back.
        "id": PRIVATE,
        "type": 0,
        "overwrites": [
            _ow(EVERYONE, ROLE, deny=P(view_channel=True).value),
            _ow(DEV, ROLE, allow=P(view_channel=True, mention_everyone=True).value),
            _ow(MUTED, ROLE, deny=P(send_messages=True, attach_files=True).value),
            _ow(BOB_BOT, MEMBER, allow=P(send_messages=True).value),
            _ow(ALICE_BOT, MEMBER, deny=P(manage_messages=True).value),
        ],
    },
    {
        # announcements: nobody sends but MOD; a role deny and another role's allow of the same bit → allow wins.
        "id": ANNOUNCE,
        "type": 5,
        "overwrites": [
            _ow(EVERYONE, ROLE, deny=P(send_messages=True).value),
            _ow(MOD, ROLE, allow=P(send_messages=True).value),
            _ow(DEV, ROLE, deny=P(send_messages=True, embed_links=True).value),
            _ow(ADMIN_BOT, MEMBER, deny=P(view_channel=True).value),
        ],
    },
    {
        "id": VOICE_CH,
        "type": 2,
        "overwrites": [
            _ow(DEV, ROLE, deny=P(connect=True).value, allow=P(manage_channels=True).value),
            _ow(MOD, ROLE, allow=P(move_members=True, mute_members=True).value),
        ],
    },
    {
        "id": CATEGORY,
        "type": 4,
        "overwrites": [_ow(EVERYONE, ROLE, deny=P(view_channel=True).value)],
    },
    {
        # read-only: send denied for everyone, and Alice's member overwrite denies view.
        "id": READONLY,
        "type": 0,
        "overwrites": [
            _ow(EVERYONE, ROLE, deny=P(send_messages=True).value),
            _ow(HOOKS, ROLE, allow=P(manage_webhooks=True).value),
            _ow(ALICE_BOT, MEMBER, deny=P(view_channel=True).value),
        ],
    },
]


def guild_payload() -> dict[str, Any]:
    roles = [
        {
            "id": str(rid),
            "name": "@everyone" if rid == EVERYONE else f"role{rid}",
            "permissions": str(value),
            "position": i,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
        }
        for i, (rid, value) in enumerate(ROLE_PERMS.items())
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
        for i, c in enumerate(CHANNELS)
    ]
    timeout_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    members = [
        {
            "user": {
                "id": str(mid),
                "username": f"m{mid}",
                "discriminator": "0",
                "avatar": None,
                "bot": mid != OWNER_ID,
            },
            "roles": [str(r) for r in role_ids],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            **({"communication_disabled_until": timeout_until} if mid == TIMED_OUT_BOT else {}),
        }
        for mid, role_ids in MEMBER_ROLES.items()
    ]
    return {
        "id": str(GUILD_ID),
        "name": "fixture",
        "owner_id": str(OWNER_ID),
        "roles": roles,
        "channels": channels,
        "members": members,
        "member_count": len(members),
    }


def build_guild(http: discord.http.HTTPClient) -> discord.Guild:
    state = ConnectionState(
        dispatch=lambda *a, **k: None, handlers={}, hooks={}, http=http, intents=discord.Intents.all()
    )
    return discord.Guild(data=guild_payload(), state=state)  # type: ignore[arg-type]
