"""Approval buttons, the deny modal and break-glass reviews.

Every button is a DynamicItem matched by its custom id, and the deny modal is matched
by its custom id too, so cards posted before a restart keep working: each click
re-reads the request from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.db.models import GrantStatus, RequestStatus
from bot.discord_io.replies import answer_error
from bot.requests.service import VoteOutcome
from bot.services.errors import BadInput
from bot.ui import DENY_MODAL_PREFIX, REVIEW_TEMPLATE, VOTE_TEMPLATE, DenyReasonModal, ts

if TYPE_CHECKING:
    from bot.client import WardenBot


def _member(interaction: discord.Interaction) -> discord.Member:
    if not isinstance(interaction.user, discord.Member):
        raise BadInput("Decide on requests in the server, on the approval card.")
    return interaction.user


def vote_receipt(out: VoteOutcome) -> str:
    """What the approver sees after their click (the card itself is updated for everyone)."""
    req = out.request
    if req.status == RequestStatus.DENIED:
        return f"You denied request #{req.id}; the requester has been told why."
    if not out.decided:
        return f"Your approval of request #{req.id} is counted ({out.approvals} of {req.approvals_required})."
    grant = out.grant
    if grant is None:
        return f"Request #{req.id} is approved."
    if grant.status == GrantStatus.ACTIVE:
        return (
            f"Your approval completed the quorum: grant #{grant.id} is applied until {ts(grant.expires_at)}."
        )
    return f"Request #{req.id} is approved, but Warden could not apply it: {grant.last_error}."


class VoteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=VOTE_TEMPLATE):
    def __init__(self, request_id: int, choice: str) -> None:
        self.request_id = request_id
        self.choice = choice
        super().__init__(
            discord.ui.Button(
                label="Approve" if choice == "approve" else "Deny",
                style=discord.ButtonStyle.success if choice == "approve" else discord.ButtonStyle.danger,
                custom_id=f"warden:vote:{request_id}:{choice}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VoteButton:
        return cls(int(match["request_id"]), match["choice"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: WardenBot = interaction.client  # type: ignore[assignment]
        try:
            member = _member(interaction)
            if self.choice == "deny":
                # Refuse before asking for a reason that would not count — unless the check is
                # slow: the modal must open within Discord's 3 seconds, and the submit re-checks.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        bot.requests.check_can_vote(member, self.request_id), bot.tuning.deny_precheck_seconds
                    )
                await interaction.response.send_modal(DenyReasonModal(self.request_id))
                return
            await interaction.response.defer()  # the card is edited in place once the vote is counted
            out = await bot.requests.vote(member, self.request_id, approve=True)
            await interaction.followup.send(vote_receipt(out), ephemeral=True)
        except Exception as exc:
            await answer_error(interaction, exc)


class ReviewButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=REVIEW_TEMPLATE):
    def __init__(self, grant_id: int) -> None:
        self.grant_id = grant_id
        super().__init__(discord.ui.Button(label="Acknowledge review", custom_id=f"warden:review:{grant_id}"))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ReviewButton:
        return cls(int(match["grant_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: WardenBot = interaction.client  # type: ignore[assignment]
        try:
            member = _member(interaction)
            await interaction.response.defer()
            grant = await bot.requests.acknowledge_review(member, self.grant_id)
            await bot.notifier.refresh_review(grant.id)
            await interaction.followup.send(
                f"Your review of break-glass grant #{grant.id} is recorded.", ephemeral=True
            )
        except Exception as exc:
            await answer_error(interaction, exc)


def modal_values(data: Mapping[str, Any]) -> dict[str, str]:
    """Text input values by custom id, from action rows or the newer label components."""
    values: dict[str, str] = {}

    def walk(components: list[dict[str, Any]]) -> None:
        for c in components:
            if "value" in c and "custom_id" in c:
                values[c["custom_id"]] = c["value"]
            if "components" in c:
                walk(c["components"])
            if "component" in c:
                walk([c["component"]])

    walk(data.get("components", []))
    return values


class Approvals(commands.Cog):
    def __init__(self, bot: WardenBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Mapping[str, Any] = interaction.data or {}
        custom_id = data.get("custom_id", "")
        if not custom_id.startswith(DENY_MODAL_PREFIX):
            return
        try:
            rid = custom_id.removeprefix(DENY_MODAL_PREFIX)
            if not rid.isdigit():
                raise BadInput("That form names no request.")
            member = _member(interaction)
            reason = modal_values(data).get("reason", "")
            await interaction.response.defer()
            out = await self.bot.requests.vote(member, int(rid), approve=False, reason=reason)
            await interaction.followup.send(vote_receipt(out), ephemeral=True)
        except Exception as exc:
            await answer_error(interaction, exc)


async def setup(bot: WardenBot) -> None:
    bot.add_dynamic_items(VoteButton, ReviewButton)
    await bot.add_cog(Approvals(bot))


async def teardown(bot: WardenBot) -> None:
    bot.remove_dynamic_items(VoteButton, ReviewButton)
