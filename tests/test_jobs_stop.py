"""Stopping the scheduler never cuts a sweep in half (APScheduler's shutdown cancels running jobs)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.jobs import Jobs


class SlowPoster:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = 0
        self.cancelled = 0

    async def deliver_due(self) -> int:
        if self.finished:
            return 0
        self.started.set()
        try:
            await asyncio.sleep(0.3)  # posting to Discord, then recording it
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return 1


async def test_stop_waits_for_the_narratives_in_flight() -> None:
    poster = SlowPoster()
    unused: Any = None
    jobs = Jobs(grants=unused, pending=unused, poster=poster, sweep_seconds=3600, narrative_seconds=0.05)
    jobs.start()
    await asyncio.wait_for(poster.started.wait(), 5)
    await jobs.stop()
    assert poster.finished == 1 and poster.cancelled == 0
    assert await jobs.deliver_narratives() == 0  # stopped: nothing more runs
