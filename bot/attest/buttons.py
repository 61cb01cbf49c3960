"""The attestation DM buttons (Still needed, Revoke, Transfer), the new-owner picker, Accept/Decline,
and the Restore button on a removal card.

Each is a DynamicItem matched by its custom id (bot/attest/texts.py), so a DM sent before a restart
still works; every click re-reads the item, and the service refuses a stale or foreign one. Errors
take the one path (``answering_errors``), like the approval buttons.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from bot.approvals.buttons import WardenButton, answering_errors
from bot.attest.texts import (
    ANSWER_TEMPLATE,
    PICK_TEMPLATE,
    RESTORE_TEMPLATE,
    TAKE_TEMPLATE,
    answer_id,
    answer_receipt,
    pick_id,
    pick_view,
    restore_id,
    restore_receipt,
    take_id,
    take_receipt,
    transfer_receipt,
)
from bot.services.errors import BadInput

if TYPE_CHECKING:
    from bot.client import WardenBot

    Interaction = discord.Interaction[WardenBot]


class _ItemChoiceButton(WardenButton, template=r"(?!)"):
    """One choice about one campaign item, labelled with the choice; ``write_id`` writes its custom id."""

    @staticmethod
    def write_id(item_id: int, choice: str) -> str:
        raise NotImplementedError

    def __init__(self, item_id: int, choice: str) -> None:
        self.item_id = item_id
        self.choice = choice
        super().__init__(discord.ui.Button(label=choice, custom_id=self.write_id(item_id, choice)))


class AnswerButton(_ItemChoiceButton, template=ANSWER_TEMPLATE):
    write_id = staticmethod(answer_id)

    async def clicked(self, interaction: Interaction) -> None:
        attest = interaction.client.services.attest
        if self.choice == "transfer":
            await attest.check_current(self.item_id, interaction.user.id)
            await interaction.response.send_message(
                "Who should own it from now on? They must accept in their own DMs.",
                view=pick_view(self.item_id),
                ephemeral=True,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        item = await attest.answer(self.item_id, interaction.user.id, keep=self.choice == "keep")
        await interaction.followup.send(answer_receipt(item), ephemeral=True)


class NewOwnerSelect(discord.ui.DynamicItem[discord.ui.UserSelect[Any]], template=PICK_TEMPLATE):
    def __init__(self, item_id: int) -> None:
        self.item_id = item_id
        super().__init__(discord.ui.UserSelect(custom_id=pick_id(item_id)))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> NewOwnerSelect:
        return cls(int(match["item_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:  # Any: the supertype's
        async def pick() -> None:
            chosen = self.item.values
            if not chosen:
                raise BadInput("Pick the member who should own it.")
            await interaction.response.defer(ephemeral=True, thinking=True)
            item = await interaction.client.services.attest.transfer(
                self.item_id, interaction.user.id, chosen[0].id
            )
            await interaction.followup.send(transfer_receipt(item), ephemeral=True)

        await answering_errors(interaction, pick)


class TakeButton(_ItemChoiceButton, template=TAKE_TEMPLATE):
    write_id = staticmethod(take_id)

    async def clicked(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        accept = self.choice == "accept"
        item = await interaction.client.services.attest.answer_transfer(
            self.item_id, interaction.user.id, accept=accept
        )
        await interaction.followup.send(take_receipt(item, accept), ephemeral=True)


class RestoreButton(WardenButton, template=RESTORE_TEMPLATE):
    def __init__(self, item_id: int) -> None:
        self.item_id = item_id
        super().__init__(discord.ui.Button(label="Restore", custom_id=restore_id(item_id)))

    async def clicked(self, interaction: Interaction) -> None:
        if not isinstance(interaction.user, discord.Member):
            raise BadInput("Restore from the card in the server's governance channel.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        item = await interaction.client.services.attest.restore(self.item_id, interaction.user.id)
        await interaction.followup.send(restore_receipt(item), ephemeral=True)


ATTEST_ITEMS = (AnswerButton, NewOwnerSelect, TakeButton, RestoreButton)
