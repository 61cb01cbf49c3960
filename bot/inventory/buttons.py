"""The inventory's persistent buttons: the page arrows of `/warden inventory` and the owner's
"Yes, I own it" in a DM. Matched by custom id template (bot/inventory/cards.py), so they work after
a restart; every press is checked again (admin, guild, the owner it was sent to) and re-reads the
database, and a refused press changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.approvals.buttons import WardenButton
from bot.inventory.cards import OWNER_TEMPLATE, PAGE_TEMPLATE, PER_PAGE, inventory_page, owner_prompt
from bot.requests.rules import is_admin
from bot.services.errors import NotAllowed

if TYPE_CHECKING:
    from bot.client import WardenBot

    Interaction = discord.Interaction[WardenBot]


def require_admin(interaction: Interaction, guild_id: int | None) -> discord.Member:
    """A server admin of this guild (Manage Server, or named in the policy's `admins`); else refused."""
    user = interaction.user
    if (
        interaction.guild_id is None
        or interaction.guild_id != guild_id
        or not isinstance(user, discord.Member)
    ):
        raise NotAllowed("This inventory belongs to another server; use `/warden inventory` in yours.")
    gp = interaction.client.services.guilds.get(guild_id)
    if gp is None or not is_admin(user, gp):
        raise NotAllowed("Only server admins (Manage Server) can see or change Warden's inventory.")
    return user


class InventoryPageButton(WardenButton, template=PAGE_TEMPLATE):
    def __init__(self, guild_id: int, page: int) -> None:
        self.guild_id = guild_id
        self.page = page
        super().__init__(discord.ui.Button(label="page", custom_id=f"warden:inv:{guild_id}:{page}"))

    async def clicked(self, interaction: Interaction) -> None:
        require_admin(interaction, self.guild_id)
        page = await interaction.client.services.inventory.page(self.guild_id, self.page, per_page=PER_PAGE)
        embed, view = inventory_page(page, self.guild_id)
        await interaction.response.edit_message(embed=embed, view=view)


class OwnerConfirmButton(WardenButton, template=OWNER_TEMPLATE):
    def __init__(self, guild_id: int, identity_id: int, owner_id: int) -> None:
        self.guild_id = guild_id
        self.identity_id = identity_id
        self.owner_id = owner_id
        super().__init__(
            discord.ui.Button(
                label="Yes, I own it", custom_id=f"warden:own:{guild_id}:{identity_id}:{owner_id}"
            )
        )

    async def clicked(self, interaction: Interaction) -> None:
        if interaction.user.id != self.owner_id:
            raise NotAllowed("This confirmation was sent to someone else; nothing was changed.")
        bot = interaction.client
        # Refused (nothing written) when it is no longer current: an admin named another owner since.
        item = await bot.services.inventory.confirm_owner(
            self.guild_id, self.identity_id, interaction.user.id
        )
        guild = bot.get_guild(self.guild_id)
        text, view = owner_prompt(item, guild.name if guild else str(self.guild_id), done=True)
        await interaction.response.edit_message(content=text, view=view)
