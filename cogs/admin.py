"""/warden — admin commands, hidden from everyone else and checked again on use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from bot.db.pins import confirm_pin
from bot.doctor import diagnose_now
from bot.escape import user_text
from bot.policy import pin_key
from bot.services.base import DB_DOWN
from bot.services.errors import NotAllowed, NotFound, Unavailable
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

    @app_commands.command(
        name="pin", description="Confirm that Warden's policy for this server belongs to it"
    )
    async def pin(self, interaction: discord.Interaction[WardenBot]) -> None:
        member = _require_admin(interaction)
        guild, directory = member.guild, self.bot.services.guilds
        if directory.get(guild.id) is None:
            why = directory.explain(guild.id, guild.name, show=user_text)
            raise NotFound(
                f"Nothing to confirm: {why}."
                if why
                else f"Nothing to confirm: config.toml has no [guild] table for this server (id {guild.id})."
            )
        pinned = directory.pin(guild.id)
        if pinned is None:
            await interaction.response.send_message(
                f"This server's policy table is keyed by its id ({guild.id}); it can never match another "
                "server, so there is nothing to confirm.",
                ephemeral=True,
            )
            return
        table, _ = pinned
        try:
            pin = await confirm_pin(
                self.bot.session_factory, pin_key(table), guild.id, member.id, self.bot.clock.now()
            )
            await directory.refresh()
        except DB_DOWN as exc:
            raise Unavailable() from exc
        if pin is None:  # another process re-pinned it meanwhile (cannot happen without a database edit)
            raise NotFound("This server is no longer pinned; run `/warden doctor` to see why.")
        by = "you" if pin.confirmed_by == member.id else f"<@{pin.confirmed_by}>"
        await interaction.response.send_message(
            f"Confirmed: [guild.{table.key}] in config.toml belongs to this server (id {guild.id}), "
            f"confirmed by {by}. Only this server gets that policy, even if renamed; another server named "
            f"'{user_text(table.key)}' gets none. To move the policy to another server, key the table by "
            'that server\'s id ([guild."<id>"]) and restart Warden.',
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: WardenBot) -> None:
    await bot.add_cog(Admin(bot))
