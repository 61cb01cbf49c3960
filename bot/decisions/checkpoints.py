"""Scheduled ledger checkpoints: the ledger's length and head, signed, written to a file the
operator ships off-box and posted to every governance channel (``warden audit verify
--checkpoint`` then catches a tail cut off after it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import discord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.decisions.narrative import NO_PINGS
from bot.ledger import Checkpoint, Signer, checkpoint_to

log = logging.getLogger(__name__)


class LedgerCheckpointer:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        signer: Signer,
        clock: Clock,
        path: Path,
        resolve_channel: Callable[[int], Awaitable[discord.abc.Messageable | None]],
        guild_ids: Callable[[], Iterable[int]],
    ) -> None:
        self._sessions = session_factory
        self._signer = signer
        self._clock = clock
        self.path = path
        self._resolve = resolve_channel
        self._guild_ids = guild_ids

    async def run(self) -> Checkpoint:
        """Write one checkpoint (a new file in a directory, or the file replaced), then post it."""
        if not self.path.suffix:
            self.path.mkdir(mode=0o750, parents=True, exist_ok=True)
        checkpoint = await checkpoint_to(self._sessions, self._signer, self.path, now=self._clock.now())
        log.info("wrote ledger checkpoint %s: %s", checkpoint.source, checkpoint.narrative())
        for guild_id in self._guild_ids():
            try:
                channel = await self._resolve(guild_id)
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
