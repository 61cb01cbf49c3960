"""The one error path for slash commands, buttons and modals.

Expected refusals (WardenError) are shown to the person, ephemerally, as written by the
service. Anything else is logged with context and answered with a short apology, so
nobody ever sees a bare "interaction failed". Work that follows the answer (cards, DMs:
bot/discord_io/follow_ups.py) has nobody left to answer, so its failures are logged here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot.discord_io.ops import DISCORD_ERRORS, describe_error
from bot.health import metrics
from bot.services.errors import WardenError

log = logging.getLogger(__name__)
T = TypeVar("T")

APOLOGY = (
    "Something went wrong on Warden's side; it has been logged. "
    "Check `/jit mine` before trying again, or tell a server admin."
)


#: A read that answers within this long is sent as the answer itself; a slower one is deferred
#: first (Discord's 3-second deadline for the first response leaves room for the round trip).
ANSWER_AT_ONCE_WITHIN = 1.5


async def answer_read(
    interaction: discord.Interaction, read: Awaitable[T], render: Callable[[T], discord.Embed]
) -> None:
    """Answer with what ``read`` returns, ephemerally: in the first response when it is quick (one
    round trip to Discord instead of a defer and a follow-up), deferred first when it is not."""
    task = asyncio.ensure_future(read)
    try:
        value = await asyncio.wait_for(asyncio.shield(task), ANSWER_AT_ONCE_WITHIN)
    except TimeoutError:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(embed=render(await task), ephemeral=True)
        return
    await interaction.response.send_message(embed=render(value), ephemeral=True)


def unwrap(error: BaseException) -> BaseException:
    while (
        isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError) and error.__cause__
    ):
        error = error.__cause__
    original = getattr(error, "original", None)
    return original if isinstance(original, BaseException) else error


#: Discord refuses a message longer than this; an answer is never lost to its length.
MAX_CONTENT = 2000


async def reply(interaction: discord.Interaction, text: str) -> None:
    """Answer ephemerally, whether or not the interaction was already acknowledged."""
    if len(text) > MAX_CONTENT:
        text = text[: MAX_CONTENT - 2] + " …"
    try:
        if interaction.response.is_done():
            await interaction.followup.send(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
    except DISCORD_ERRORS as exc:
        log.warning("could not answer interaction %s: %s", interaction.id, describe_error(exc))


async def answer_error(interaction: discord.Interaction, error: BaseException) -> None:
    error = unwrap(error)
    metrics.interaction_error(interaction, error)
    if isinstance(error, WardenError):
        await reply(interaction, error.message)
        return
    if isinstance(error, app_commands.CheckFailure):
        await reply(interaction, "You don't have permission to use this command here.")
        return
    data: Mapping[str, Any] = interaction.data or {}
    log.error(
        "unhandled error in interaction",
        exc_info=error,
        extra={
            "guild_id": interaction.guild_id,
            "user_id": interaction.user.id if interaction.user else None,
            "command": interaction.command.qualified_name if interaction.command else None,
            "custom_id": data.get("custom_id"),
        },
    )
    await reply(interaction, APOLOGY)


def follow_up_failed(what: str, error: BaseException, **ctx: Any) -> None:
    """Follow-up work (a card, a DM) failed after the person had their answer: logged with context,
    never lost. The decision it follows is durable; a card never posted is posted by the lost-card sweep."""
    if isinstance(error, DISCORD_ERRORS):
        log.warning("follow-up %s failed: %s", what, describe_error(error), extra=ctx)
        return
    log.error("follow-up %s failed", what, exc_info=error, extra=ctx)
