"""Scheduled ledger checkpoints: the ledger's length and head, signed, written to a file the
operator ships off-box and posted to every governance channel (``warden audit verify
--checkpoint`` then catches a tail cut off after it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import discord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.decisions.narrative import NO_PINGS
from bot.ledger import Checkpoint, Signer, checkpoint_to

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerCheckpointer:
    """Where the checkpoint is written (``path``: a file, or a directory of them) and posted
    (each governed guild's governance channel)."""

    session_factory: async_sessionmaker[AsyncSession]
    signer: Signer
    clock: Clock
    path: Path
    resolve_channel: Callable[[int], Awaitable[discord.abc.Messageable | None]]
    guild_ids: Callable[[], Iterable[int]]

    async def run(self) -> Checkpoint:
        """Write one checkpoint (a new file in a directory, or the file replaced), then post it."""
        if not self.path.suffix:
            self.path.mkdir(mode=0o750, parents=True, exist_ok=True)
        checkpoint = await checkpoint_to(self.session_factory, self.signer, self.path, now=self.clock.now())
        log.info("wrote ledger checkpoint %s: %s", checkpoint.source, checkpoint.narrative())
        for guild_id in self.guild_ids():
            try:
                channel = await self.resolve_channel(guild_id)
                if channel is None:
                    log.warning("checkpoint not posted: no governance channel", extra={"guild_id": guild_id})
                    continue
                await channel.send(checkpoint.narrative(), allowed_mentions=NO_PINGS)
            except discord.HTTPException as exc:
                log.warning(
                    "checkpoint not posted to the governance channel: HTTP %s", exc.status,
                    extra={"guild_id": guild_id},
                )  # fmt: skip
        return checkpoint
