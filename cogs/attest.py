"""/warden attest start|status, and the attestation buttons: registered here, defined in bot/attest/."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from bot.attest.buttons import ATTEST_ITEMS
from bot.attest.texts import started_text, status_text
from discord import app_commands

from cogs.admin import _require_admin

if TYPE_CHECKING:
    from bot.client import WardenBot


class AttestCommands(app_commands.Group):
    """A subgroup of /warden (the admin cog's group): same visibility, same admin check."""

    def __init__(self, bot: WardenBot) -> None:
        super().__init__(name="attest", description="Attestation campaigns: owners vouch for what they own")
        self.bot = bot

    @app_commands.command(
        name="start", description="Start an attestation campaign now: every owner is asked in DMs"
    )
    async def start(self, interaction: discord.Interaction[WardenBot]) -> None:
        member = _require_admin(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        campaign, items = await self.bot.services.attest.start(member.guild.id, actor_id=member.id)
        await interaction.followup.send(
            started_text(campaign, items), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="status", description="Each recent attestation campaign's progress")
    async def status(self, interaction: discord.Interaction[WardenBot]) -> None:
        member = _require_admin(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = await self.bot.services.attest.status(member.guild.id)
        await interaction.followup.send(
            status_text([(p.campaign, p.counts) for p in progress]),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


def _warden_group(bot: WardenBot) -> app_commands.Group:
    group = bot.tree.get_command("warden")
    if not isinstance(group, app_commands.Group):
        raise RuntimeError("cogs.attest needs cogs.admin (the /warden group) loaded first")
    return group


async def setup(bot: WardenBot) -> None:
    bot.add_dynamic_items(*ATTEST_ITEMS)
    _warden_group(bot).add_command(AttestCommands(bot))


async def teardown(bot: WardenBot) -> None:
    bot.remove_dynamic_items(*ATTEST_ITEMS)
    _warden_group(bot).remove_command("attest")
