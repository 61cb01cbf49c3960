"""The one error path for slash commands, buttons and modals.

Expected refusals (WardenError) are shown to the person, ephemerally, as written by the
service. Anything else is logged with context and answered with a short apology, so
nobody ever sees a bare "interaction failed".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands

from bot.discord_io.ops import DISCORD_ERRORS, describe_error
from bot.health import metrics
from bot.services.errors import WardenError

log = logging.getLogger(__name__)

APOLOGY = (
    "Something went wrong on Warden's side; it has been logged. "
    "Check `/jit mine` before trying again, or tell a server admin."
)


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
