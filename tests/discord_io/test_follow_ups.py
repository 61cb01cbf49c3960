"""Follow-up work: kept while a handler runs, started once it is done, in order, never lost."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from bot.discord_io.follow_ups import FollowUps, after_answer


@dataclass
class Clicked:
    """What FollowUps reads of an interaction that raises nothing: its id."""

    id: int


@dataclass
class Teller:
    """A notifier: records what it told, in order; ``broken`` fails like a bug would."""

    told: list[str] = field(default_factory=list)

    @after_answer
    async def card(self, what: str) -> None:
        await asyncio.sleep(0)
        self.told.append(f"card {what}")

    @after_answer
    async def dm(self, what: str) -> None:
        self.told.append(f"dm {what}")

    @after_answer
    async def broken(self) -> None:
        raise RuntimeError("a bug in a card")


async def test_outside_a_handler_it_runs_at_once() -> None:
    teller = Teller()
    await teller.card("swept")
    assert teller.told == ["card swept"]


async def test_inside_a_handler_it_follows_the_answer_in_order_and_a_failure_is_logged(caplog) -> None:
    follow_ups, teller = FollowUps(), Teller()
    with caplog.at_level(logging.ERROR):
        async with follow_ups.answering(Clicked(7)):
            await teller.card("#1")
            await teller.broken()
            await teller.dm("alice")
            teller.told.append("answer")
        await follow_ups.settled(7)
    assert teller.told == ["answer", "card #1", "dm alice"]  # the failure did not stop the DM
    failed = [r for r in caplog.records if "follow-up broken failed" in r.getMessage()]
    assert failed and failed[0].interaction_id == 7 and failed[0].exc_info is not None
    await follow_ups.idle()


async def test_settled_waits_for_a_handler_still_running() -> None:
    follow_ups, teller = FollowUps(), Teller()
    answered = asyncio.Event()

    async def handler() -> None:
        async with follow_ups.answering(Clicked(8)):
            await teller.card("#2")
            answered.set()
            await asyncio.sleep(0.01)  # the handler returns a little after its answer

    task = asyncio.create_task(handler())
    await answered.wait()
    await follow_ups.settled(8)
    assert teller.told == ["card #2"]
    await task


async def test_closing_cuts_short_what_outlasts_the_drain(caplog) -> None:
    follow_ups = FollowUps(drain_seconds=0.05)

    class Slow:
        @after_answer
        async def card(self) -> None:
            await asyncio.sleep(60)

    async with follow_ups.answering(Clicked(9)):
        await Slow().card()
    with caplog.at_level(logging.WARNING):
        await follow_ups.close()
    assert any("cut short at shutdown" in r.getMessage() for r in caplog.records)
    await follow_ups.idle()  # nothing is left running


async def test_with_answer_first_off_it_runs_where_it_is_asked_for() -> None:
    follow_ups, teller = FollowUps(answer_first=False), Teller()
    async with follow_ups.answering(Clicked(10)):
        await teller.card("#3")
        teller.told.append("answer")
    assert teller.told == ["card #3", "answer"]
