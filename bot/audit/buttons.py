"""The held change card's Approve / Deny buttons.

A DynamicItem matched by its custom id (bot/audit/cards.py), so a card posted before a restart
still works; every click re-reads the held change, and ``HeldChanges`` refuses anyone who is not
one of the server's admins, a decided or expired change, and the account that made the change.
Errors take the one path (``answering_errors``), like the request card's buttons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.approvals.buttons import ApproveDenyButton
from bot.audit.cards import HELD_TEMPLATE, held_button_id, held_receipt
from bot.services.errors import BadInput, row_id

if TYPE_CHECKING:
    from bot.client import WardenBot

    Interaction = discord.Interaction[WardenBot]


class HeldChangeButton(ApproveDenyButton, template=HELD_TEMPLATE):
    def __init__(self, held_id: int, choice: str) -> None:
        self.held_id = held_id
        super().__init__(choice, held_button_id(held_id, choice))

    async def clicked(self, interaction: Interaction) -> None:
        if not isinstance(interaction.user, discord.Member) or interaction.guild_id is None:
            raise BadInput("Decide held changes in the server, on the approval card.")
        row_id(self.held_id, "held change")
        held = interaction.client.services.held
        await interaction.response.defer()  # the card is edited in place once it is decided
        decide = held.approve if self.choice == "approve" else held.deny
        out = await decide(self.held_id, interaction.guild_id, interaction.user.id)
        await interaction.followup.send(held_receipt(out), ephemeral=True)
