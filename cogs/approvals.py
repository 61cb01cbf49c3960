"""Approval buttons, the deny modal and break-glass reviews: registered here, defined in bot/approvals/buttons.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from bot.approvals.buttons import (
    DenyReasonModal,
    ReviewButton,
    VoteButton,
    answer_unknown_item,
    is_unknown_item,
)
from discord.ext import commands

if TYPE_CHECKING:
    from bot.client import WardenBot


class Approvals(commands.Cog):
    def __init__(self, bot: WardenBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction[WardenBot]) -> None:
        if DenyReasonModal.matches(interaction):
            await DenyReasonModal.submitted(interaction)
        elif is_unknown_item(interaction):
            await answer_unknown_item(interaction)


async def setup(bot: WardenBot) -> None:
    bot.add_dynamic_items(VoteButton, ReviewButton)
    await bot.add_cog(Approvals(bot))


async def teardown(bot: WardenBot) -> None:
    bot.remove_dynamic_items(VoteButton, ReviewButton)
