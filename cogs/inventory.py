"""/warden inventory and /warden owner set — admins only; thin: check, call the inventory, render.

Both join the `/warden` group that cogs/admin.py declares; the page arrows and the owner's DM
button are registered here and defined in bot/inventory/buttons.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from bot.inventory.buttons import InventoryPageButton, OwnerConfirmButton, require_admin
from bot.inventory.cards import PER_PAGE, inventory_page, item_title, owner_text
from bot.services.errors import BadInput
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.client import WardenBot

    Interaction = discord.Interaction[WardenBot]


def _guild(interaction: Interaction) -> discord.Guild:
    if interaction.guild is None:
        raise BadInput("Use `/warden` commands in a server, not in DMs.")
    return interaction.guild


@app_commands.command(name="inventory", description="Bots, webhooks, integrations and tokens, riskiest first")
@app_commands.describe(page="the page to open (default 1)")
async def inventory(interaction: Interaction, page: app_commands.Range[int, 1, 100000] = 1) -> None:
    guild = _guild(interaction)
    require_admin(interaction, guild.id)
    await interaction.response.defer(ephemeral=True, thinking=True)
    bot = interaction.client
    _, problem = await bot.services.live_inventory.refresh(guild)
    shown = await bot.services.inventory.page(guild.id, page, per_page=PER_PAGE)
    embed, view = inventory_page(shown, guild.id)
    note = (
        f"Warden could not read everything from Discord ({problem}); those items are as last recorded."
        if problem
        else None
    )
    await interaction.followup.send(
        note or discord.utils.MISSING,
        embed=embed,
        view=view,
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


owner = app_commands.Group(name="owner", description="Who answers for a bot, webhook, integration or token")


@owner.command(name="set", description="Name the member who owns an inventory item")
@app_commands.describe(
    item="the inventory item (its #id from /warden inventory)", member="its owner: a person"
)
async def owner_set(interaction: Interaction, item: int, member: discord.Member) -> None:
    guild = _guild(interaction)
    admin = require_admin(interaction, guild.id)
    if member.bot:
        raise BadInput(
            f"{member.mention} is a bot; an owner is a person who answers for the item. Nothing was changed."
        )
    changed = await interaction.client.services.inventory.set_owner(
        guild.id, item, member.id, actor_id=admin.id
    )
    await interaction.response.send_message(
        f"{item_title(changed)} is now owned by {owner_text(changed)}.",
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


@owner_set.autocomplete("item")
async def _item_choices(interaction: Interaction, current: str) -> list[app_commands.Choice[int]]:
    if interaction.guild is None:
        return []
    needle = current.casefold()
    items = await interaction.client.services.inventory.items(interaction.guild.id)
    return [
        app_commands.Choice(name=f"#{i.id} {i.kind} {i.name}"[:100], value=i.id)
        for i in items
        if needle in str(i.id) or needle in i.name.casefold() or needle in i.kind
    ][:25]


class Activity(commands.Cog):
    """What dormancy measures: messages seen in the server and interactions with Warden."""

    def __init__(self, bot: WardenBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if self.bot.user is not None and message.author.id == self.bot.user.id:
            return  # Warden's own cards and narratives are not activity
        await self.bot.own(lambda: self.bot.services.activity.message_seen(message))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: Interaction) -> None:
        if interaction.guild_id is not None:
            gid, uid = interaction.guild_id, interaction.user.id
            await self.bot.own(lambda: self.bot.services.activity.member_seen(gid, uid, "interaction"))


async def setup(bot: WardenBot) -> None:
    warden = bot.tree.get_command("warden")
    if not isinstance(warden, app_commands.Group):
        raise RuntimeError("cogs.inventory needs cogs.admin (the /warden group) loaded first")
    warden.add_command(inventory)
    warden.add_command(owner)
    bot.add_dynamic_items(InventoryPageButton, OwnerConfirmButton)
    await bot.add_cog(Activity(bot))


async def teardown(bot: WardenBot) -> None:
    bot.remove_dynamic_items(InventoryPageButton, OwnerConfirmButton)
    warden = bot.tree.get_command("warden")
    if isinstance(warden, app_commands.Group):
        warden.remove_command("inventory")
        warden.remove_command("owner")
