"""/warden — admin commands, hidden from everyone else and checked again on use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from bot.doctor import diagnose_now
from bot.services.errors import NotAllowed
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.client import WardenBot


def _require_admin(interaction: discord.Interaction[WardenBot]) -> discord.Member:
    # default_member_permissions only hides the command; a server can override that, so check again.
    user = interaction.user
    if not isinstance(user, discord.Member) or not (
        user.guild_permissions.administrator or user.guild_permissions.manage_guild
    ):
        raise NotAllowed("Only server admins (Manage Server) can use `/warden` commands.")
    return user


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(commands.GroupCog, group_name="warden", group_description="Warden administration"):
    def __init__(self, bot: WardenBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="doctor", description="Check that Warden can really grant every scope")
    async def doctor(self, interaction: discord.Interaction[WardenBot]) -> None:
        member = _require_admin(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await diagnose_now(self.bot, member.guild)
        await interaction.followup.send(
            report.render(), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )


async def setup(bot: WardenBot) -> None:
    await bot.add_cog(Admin(bot))
