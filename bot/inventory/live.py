"""The inventory from the live guild: fetch what the gateway cache lacks, refresh, ask inferred owners.

Webhooks, integrations and the audit log's bot_add entries (who added each bot) are fetched over
REST; the rest comes from discord.py's cache. If a fetch fails, nothing is refreshed (a partial
snapshot would mark the missing identities as gone) and the caller says so.
"""

from __future__ import annotations

import logging

import discord

from bot.clock import Clock
from bot.decisions.narrative import NO_PINGS
from bot.discord_io.ops import DISCORD_ERRORS, describe_error
from bot.inventory.cards import owner_prompt
from bot.inventory.service import InventoryService, RefreshReport
from bot.inventory.snapshot import snapshot_from_discord

log = logging.getLogger(__name__)

AUDIT_LOOKBACK = 100  # bot_add entries read per refresh (Discord keeps 45 days of audit log)


class LiveInventory:
    def __init__(self, client: discord.Client, inventory: InventoryService, clock: Clock) -> None:
        self._client = client
        self._inventory = inventory
        self._clock = clock

    async def refresh(self, guild: discord.Guild) -> tuple[RefreshReport | None, str | None]:
        """Refresh the guild's inventory; (report, None), or (None, why not) when Discord refused."""
        try:
            webhooks = await guild.webhooks()
            integrations = await guild.integrations()
            added_by: dict[int, int] = {}
            async for entry in guild.audit_logs(action=discord.AuditLogAction.bot_add, limit=AUDIT_LOOKBACK):
                if entry.target is not None and entry.user is not None:
                    added_by.setdefault(int(entry.target.id), entry.user.id)  # newest first: the latest add
        except DISCORD_ERRORS as exc:
            why = describe_error(exc)
            log.warning("inventory not refreshed: %s", why, extra={"guild_id": guild.id})
            return None, why
        snapshot = snapshot_from_discord(
            guild, webhooks=webhooks, integrations=integrations, added_by=added_by, taken_at=self._clock.now()
        )
        report = await self._inventory.refresh(snapshot)
        for identity_id in report.owners_inferred:
            await self.ask_owner(guild, identity_id)
        return report, None

    async def ask_owner(self, guild: discord.Guild, identity_id: int) -> bool:
        """DM the inferred owner a confirmation button; False if they could not be reached."""
        item = await self._inventory.get(guild.id, identity_id)
        if item.owner_id is None:
            return False
        text, view = owner_prompt(item, guild.name)
        try:
            channel = await self._client.create_dm(discord.Object(item.owner_id))
            await channel.send(text, view=view, allowed_mentions=NO_PINGS)
        except DISCORD_ERRORS as exc:
            # The item stays "inferred, not confirmed" (a risk reason on it); an admin can set the owner.
            log.warning(
                "could not ask the inferred owner to confirm: %s",
                describe_error(exc),
                extra={"guild_id": guild.id, "identity_id": identity_id},
            )
            return False
        return True
