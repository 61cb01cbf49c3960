"""What an operator needs to read in the log once the bot is connected.

- For every configured guild the bot is not in: the invite URL for this application, with the
  minimum permissions Warden needs.
- For every guild it is in: a summary of ``/warden doctor`` (each problem on its own line).

``client.py``'s ``on_ready`` calls :func:`log_startup_report` once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from bot.policy import permissions_from_names

if TYPE_CHECKING:
    from bot.client import WardenBot
    from bot.policy import GuildPolicy

log = logging.getLogger("warden.startup")

#: The least Warden needs (the README's table): Manage Roles, View Audit Log, View Channels,
#: Send Messages, Embed Links, Read Message History.
MIN_PERMISSIONS = permissions_from_names(
    ("manage_roles", "view_audit_log", "view_channel", "send_messages", "embed_links", "read_message_history")
)


def invite_url(application_id: int, guild_id: int | None = None) -> str:
    """The OAuth2 URL that adds this application as a bot with the minimum permissions."""
    params: dict[str, str | int] = {
        "client_id": application_id,
        "scope": "bot applications.commands",
        "permissions": MIN_PERMISSIONS.value,
    }
    if guild_id is not None:
        params |= {"guild_id": guild_id, "disable_guild_select": "true"}
    return "https://discord.com/oauth2/authorize?" + urlencode(params, safe=" ").replace(" ", "+")


def missing_guilds(bot: WardenBot) -> list[GuildPolicy]:
    """Guild tables in the policy that match no guild the bot is in (by id, or by its pin)."""
    return [
        gp for gp in bot.policy.guilds if not any(bot.services.guilds.get(g.id) is gp for g in bot.guilds)
    ]


async def log_startup_report(bot: WardenBot) -> None:
    """Invite lines for configured guilds the bot is not in, then a doctor summary per guild."""
    from bot.doctor import diagnose_now

    app_id = bot.application_id or (bot.user.id if bot.user else None)
    for gp in missing_guilds(bot):
        guild_id = int(gp.key) if gp.key.isdigit() else None
        if app_id is None:
            log.warning("not in the configured guild %s; invite the bot to it", gp.key)
            continue
        log.warning(
            "not in the configured guild %s; invite the bot with %s",
            gp.key,
            invite_url(app_id, guild_id),
            extra={"guild_id": guild_id},
        )
    for guild in bot.guilds:
        if bot.services.guilds.get(guild.id) is None:
            continue  # said already by on_ready ("no policy for guild")
        try:
            report = await diagnose_now(bot, guild)
        except Exception:
            log.exception("doctor could not check guild %s", guild.name, extra={"guild_id": guild.id})
            continue
        if not report.problems:
            log.info("doctor: %s checks out", guild.name, extra={"guild_id": guild.id})
            continue
        log.warning(
            "doctor: %d problem(s) in %s; run /warden doctor there for the fixes",
            report.problems,
            guild.name,
            extra={"guild_id": guild.id},
        )
        for title, problems in report.sections:
            for problem in problems:
                log.warning("doctor: %s — %s: %s", guild.name, title, problem, extra={"guild_id": guild.id})
