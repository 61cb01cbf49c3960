"""The inventory from the live guild: fetch what the gateway cache lacks, refresh, ask inferred owners.

Webhooks, integrations and the audit log's bot_add entries (who added each bot) are fetched over
REST; the rest comes from discord.py's cache. A read Discord refuses leaves that kind as it was
recorded (a partial list must not mark identities as gone), and the caller says what was not read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

from bot.clock import Clock
from bot.db.models import IdentityKind
from bot.decisions.narrative import NO_PINGS
from bot.discord_io.ops import DISCORD_ERRORS, describe_error
from bot.inventory.cards import owner_prompt
from bot.inventory.service import InventoryService, RefreshReport
from bot.inventory.snapshot import snapshot_from_discord

T = TypeVar("T")

log = logging.getLogger(__name__)

AUDIT_LOOKBACK = 100  # bot_add entries read per refresh (Discord keeps 45 days of audit log)


class LiveInventory:
    def __init__(
        self,
        client: discord.Client,
        inventory: InventoryService,
        clock: Clock,
        governed: Callable[[int], bool] = lambda _guild_id: True,
    ) -> None:
        self._client = client
        self._inventory = inventory
        self._clock = clock
        self._governed = governed

    async def refresh(self, guild: discord.Guild) -> tuple[RefreshReport | None, str | None]:
        """Refresh the guild's inventory: (report, None), or (report, what could not be read).

        Each REST read may be refused on its own (Warden lacks Manage Webhooks, Manage Server or View
        Audit Log): the rest is still refreshed, and what could not be listed is left as recorded
        (never marked gone). (None, why) only when the refresh itself failed.
        """
        unread: set[IdentityKind] = set()
        problems: list[str] = []

        async def read(what: str, kinds: tuple[IdentityKind, ...], fetch: Awaitable[T]) -> T | None:
            try:
                return await fetch
            except DISCORD_ERRORS as exc:
                unread.update(kinds)
                problems.append(f"{what}: {describe_error(exc)}")
                return None

        webhooks = await read("webhooks (needs Manage Webhooks)", (IdentityKind.WEBHOOK,), guild.webhooks())
        integrations = await read(
            "integrations (needs Manage Server)", (IdentityKind.INTEGRATION,), guild.integrations()
        )
        added_by = await read("who added each bot (needs View Audit Log)", (), self._bot_adders(guild))
        snapshot = snapshot_from_discord(
            guild,
            webhooks=webhooks or (),
            integrations=integrations or (),
            added_by=added_by or {},
            taken_at=self._clock.now(),
        )
        try:
            report = await self._inventory.refresh(snapshot, unread=frozenset(unread))
        except Exception as exc:
            log.exception("inventory not refreshed", extra={"guild_id": guild.id})
            return None, type(exc).__name__
        for identity_id in report.owners_inferred:
            await self.ask_owner(guild, identity_id)
        why = "; ".join(problems) or None
        if why:
            log.warning("inventory refreshed in part: %s", why, extra={"guild_id": guild.id})
        return report, why

    @staticmethod
    async def _bot_adders(guild: discord.Guild) -> dict[int, int]:
        added_by: dict[int, int] = {}
        async for entry in guild.audit_logs(action=discord.AuditLogAction.bot_add, limit=AUDIT_LOOKBACK):
            if entry.target is not None and entry.user is not None:
                added_by.setdefault(int(entry.target.id), entry.user.id)  # newest first: the latest add
        return added_by

    async def refresh_all(self) -> int:
        """Every guild this process sees and the policy governs; returns how many were refreshed."""
        done = 0
        for guild in list(self._client.guilds):
            if self._governed(guild.id):
                report, _ = await self.refresh(guild)
                done += report is not None
        return done

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
