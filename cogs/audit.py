"""Audit-log entries from the gateway, handed to the audit room; catch-up after a resume; registers the
held change card's buttons."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.audit.buttons import HeldChangeButton
from discord.ext import commands

if TYPE_CHECKING:
    from bot.client import WardenBot

log = logging.getLogger(__name__)


class AuditListenerCog(commands.Cog):
    def __init__(self, bot: WardenBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_raw_audit_log_entry(self, data: Any) -> None:
        self.bot.services.audit.submit(data)

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        self.bot.services.audit.connection_lost()

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        # Discord replays what a resume missed, but not always all of it: read the audit log too.
        results = await self.bot.own(self.bot.services.audit.catch_up)
        if results is not None:
            log.info("audit-log catch-up after resume: %d decided", sum(r.decided for r in results))


async def setup(bot: WardenBot) -> None:
    bot.add_dynamic_items(HeldChangeButton)  # the held change card's Approve / Deny (bot/audit/buttons.py)
    await bot.add_cog(AuditListenerCog(bot))


async def teardown(bot: WardenBot) -> None:
    bot.remove_dynamic_items(HeldChangeButton)
