"""The approval card's buttons, the deny modal and its submit, and the break-glass review button.

Every button is a DynamicItem matched by its custom id, and the deny modal is matched by
its custom id too, so cards posted before a restart keep working: each click re-reads
the request from the database. Every handler runs through ``answering_errors``, the one
place a refusal or a bug becomes the reply the person sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

import discord

from bot.approvals.cards import (
    DENY_MODAL_PREFIX,
    REVIEW_TEMPLATE,
    VOTE_TEMPLATE,
    choice_button,
    deny_modal_id,
    review_id,
    vote_id,
)
from bot.approvals.service import VoteOutcome
from bot.db.models import GrantStatus, RequestStatus
from bot.discord_io.replies import reply
from bot.durations import discord_ts as ts
from bot.services.errors import BadInput, row_id

if TYPE_CHECKING:
    from bot.client import WardenBot

    Interaction = discord.Interaction[WardenBot]


async def answering_errors(interaction: Interaction, action: Callable[[], Awaitable[None]]) -> None:
    """Run a click or submit; anything it raises is answered by the one error path, and the cards
    and DMs it leads to follow once the person has their answer (bot/discord_io/follow_ups.py)."""
    async with interaction.client.follow_ups.answering(interaction):
        await action()


def approver(interaction: Interaction) -> discord.Member:
    if not isinstance(interaction.user, discord.Member):
        raise BadInput("Decide on requests in the server, on the approval card.")
    return interaction.user


def vote_receipt(out: VoteOutcome) -> str:
    """What the approver sees after their click (the card itself is updated for everyone)."""
    req = out.request
    if req.status == RequestStatus.DENIED:
        return f"You denied request #{req.id}; the requester is sent your reason by DM."
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


# The base is never registered, so its template (which matches nothing) is never used.
class WardenButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)"):
    """A persistent button: subclasses say what a click does; errors take the one path.

    A subclass's ``__init__`` takes the named groups of its custom id template, by name."""

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> Self:
        """The button a custom id names: each group of the template is the ``__init__`` argument
        of that name (a number when the group is all digits, as every id is)."""
        make: Callable[..., Self] = cls
        return make(**{k: int(v) if v.isdigit() else v for k, v in match.groupdict().items()})

    async def callback(self, interaction: discord.Interaction[Any]) -> None:  # Any: the supertype's
        await answering_errors(interaction, lambda: self.clicked(interaction))

    async def clicked(self, interaction: Interaction) -> None:
        raise NotImplementedError


class ApproveDenyButton(WardenButton, template=r"(?!)"):
    """The Approve or Deny button (``choice``) of a card; subclasses say whose card and what a click does."""

    def __init__(self, choice: str, custom_id: str) -> None:
        self.choice = choice
        super().__init__(choice_button(choice, custom_id))


class VoteButton(ApproveDenyButton, template=VOTE_TEMPLATE):
    def __init__(self, request_id: int, choice: str) -> None:
        self.request_id = request_id
        super().__init__(choice, vote_id(request_id, choice))

    async def clicked(self, interaction: Interaction) -> None:
        bot = interaction.client
        member = approver(interaction)
        row_id(self.request_id, "request")
        if self.choice == "deny":
            # Refuse before asking for a reason that would not count — unless the check is
            # slow: the modal must open within Discord's 3 seconds, and the submit re-checks.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    bot.services.approvals.check_can_vote(member, self.request_id),
                    bot.tuning.deny_precheck_seconds,
                )
            await interaction.response.send_modal(DenyReasonModal(self.request_id))
            return
        await interaction.response.defer()  # the card is edited in place once the vote is counted
        out = await bot.services.approvals.vote(member, self.request_id, approve=True)
        await interaction.followup.send(vote_receipt(out), ephemeral=True)


class DenyReasonModal(discord.ui.Modal):
    """Asks an approver why. Its submit is matched by custom id (``submitted``), so a modal
    opened before a restart still works after it."""

    reason: discord.ui.TextInput[DenyReasonModal] = discord.ui.TextInput(
        label="Reason for denying",
        style=discord.TextStyle.paragraph,
        custom_id="reason",
        min_length=1,
        max_length=400,
        placeholder="Tell the requester what is missing or what to do instead",
    )

    def __init__(self, request_id: int) -> None:
        super().__init__(
            title=f"Deny request #{request_id}", custom_id=deny_modal_id(request_id), timeout=900
        )

    @staticmethod
    def matches(interaction: discord.Interaction[Any]) -> bool:
        data: Mapping[str, Any] = interaction.data or {}
        return interaction.type is discord.InteractionType.modal_submit and str(
            data.get("custom_id", "")
        ).startswith(DENY_MODAL_PREFIX)

    @staticmethod
    async def submitted(interaction: Interaction) -> None:
        async def deny() -> None:
            data: Mapping[str, Any] = interaction.data or {}
            rid = str(data.get("custom_id", "")).removeprefix(DENY_MODAL_PREFIX)
            if not (rid.isascii() and rid.isdigit()):
                raise BadInput("That form names no request.")
            member = approver(interaction)
            row_id(int(rid[:20]), "request")
            reason = modal_values(data).get("reason", "")
            await interaction.response.defer()
            out = await interaction.client.services.approvals.vote(
                member, int(rid), approve=False, reason=reason
            )
            await interaction.followup.send(vote_receipt(out), ephemeral=True)

        await answering_errors(interaction, deny)


class ReviewButton(WardenButton, template=REVIEW_TEMPLATE):
    def __init__(self, grant_id: int) -> None:
        self.grant_id = grant_id
        super().__init__(discord.ui.Button(label="Acknowledge review", custom_id=review_id(grant_id)))

    async def clicked(self, interaction: Interaction) -> None:
        member = approver(interaction)
        row_id(self.grant_id, "break-glass grant")
        await interaction.response.defer()
        grant = await interaction.client.services.approvals.acknowledge_review(member, self.grant_id)
        await interaction.followup.send(
            f"Your review of break-glass grant #{grant.id} is recorded.", ephemeral=True
        )


UNKNOWN_ITEM = (
    "This button or form is not one Warden knows (an altered or outdated card); nothing was changed. "
    "Use the buttons on a current approval card, or `/jit mine`."
)


def is_unknown_item(interaction: discord.Interaction[Any]) -> bool:
    """A click or submit whose custom id says Warden's (``warden:``) but that no handler matches.

    discord.py ignores such an interaction, which the person would see as "interaction failed".
    """
    data: Mapping[str, Any] = interaction.data or {}
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.startswith("warden:"):
        return False
    if interaction.type is discord.InteractionType.component:
        known = getattr(interaction.client, "item_templates", ())  # every registered button and select
        return not any(template.fullmatch(custom_id) for template in known)
    if interaction.type is discord.InteractionType.modal_submit:
        return not custom_id.startswith(DENY_MODAL_PREFIX)
    return False


async def answer_unknown_item(interaction: discord.Interaction[Any]) -> None:
    await reply(interaction, UNKNOWN_ITEM)


def modal_values(data: Mapping[str, Any]) -> dict[str, str]:
    """Text input values by custom id, from action rows or the newer label components."""
    values: dict[str, str] = {}

    def walk(components: object) -> None:
        # Whatever the client sent: only well-formed text inputs count, anything else is skipped.
        for c in components if isinstance(components, list) else ():
            if not isinstance(c, dict):
                continue
            if isinstance(c.get("value"), str) and isinstance(c.get("custom_id"), str):
                values[c["custom_id"]] = c["value"]
            walk(c.get("components"))
            walk([c.get("component")])

    walk(data.get("components", []))
    return values
