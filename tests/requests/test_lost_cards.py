"""A request whose process died between its commit and its card gets its card from a sweep, once.

Regression (crash campaign, kill point request.extend.after_commit): the card was posted only
right after the commit, so a crash there left a request nobody could vote on until it expired.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from bot.controls import ControlMap
from bot.db.models import AccessRequest, RequestStatus
from bot.db.session import create_engine, create_session_factory
from bot.decisions.service import DecisionService
from bot.ledger import Signer
from bot.policy import GuildDirectory, load_policy
from bot.requests.sweeps import PendingSweeps
from bot.services.base import CARD_GRACE, Core
from sandbox.harness import EXAMPLE_CONFIG
from tests.helpers import pin_guild

GUILD = 42


class Cards:
    """The notifier's card posting: records each post; ``fail`` makes Discord refuse it."""

    def __init__(self) -> None:
        self.posted: list[int] = []
        self.fail = False

    async def post_request_card(self, req, scope) -> None:
        await asyncio.sleep(0.01)  # let a second process interleave
        if self.fail:
            return  # the notifier logs the failure and leaves the card unposted
        self.posted.append(req.id)
        req.card_channel_id, req.card_message_id = 7, 1000 + req.id

    async def request_expired(self, req) -> None: ...
    async def remind_approvers(self, req) -> None: ...


def sweeps(factory, clock, cards: Cards) -> PendingSweeps:
    guilds = GuildDirectory(load_policy(EXAMPLE_CONFIG))
    pin_guild(guilds, GUILD, "acme")  # as the bot does when it first sees acme
    core = Core(
        guilds=guilds,
        sessions=factory,
        clock=clock,
        decisions=DecisionService(Signer.generate(), ControlMap.load_default(), clock),
    )
    return PendingSweeps(core, notifier=cards)


async def pending_without_card(factory, clock) -> int:
    now = clock.now()
    async with factory() as s, s.begin():
        req = AccessRequest(
            guild_id=GUILD, scope_id="deploy", requester_id=1, subject_id=1, duration_seconds=3600,
            created_at=now, pending_until=now + dt.timedelta(hours=4),
        )  # fmt: skip
        s.add(req)
        await s.flush()
        return req.id


async def test_a_lost_card_is_posted_once_after_the_grace(session_factory, clock, db_url):
    rid = await pending_without_card(session_factory, clock)
    cards = Cards()
    other = create_engine(db_url)  # a second process sweeping the same database
    try:
        a = sweeps(session_factory, clock, cards)
        b = sweeps(create_session_factory(other), clock, cards)
        assert await a.post_lost_cards() == 0  # the live process may be posting it right now
        clock.advance(CARD_GRACE)
        await asyncio.gather(a.post_lost_cards(), b.post_lost_cards())
        assert cards.posted == [rid]
        assert await a.post_lost_cards() == 0 and cards.posted == [rid]
    finally:
        await other.dispose()


async def test_a_card_discord_refused_is_tried_again_at_the_next_sweep(session_factory, clock):
    rid = await pending_without_card(session_factory, clock)
    cards = Cards()
    cards.fail = True
    sweep = sweeps(session_factory, clock, cards)
    clock.advance(CARD_GRACE)
    assert await sweep.post_lost_cards() == 0
    async with session_factory() as s:
        req = await s.scalar(select(AccessRequest).where(AccessRequest.id == rid))
        assert req is not None and req.card_channel_id is None  # the claim was released
    cards.fail = False
    assert await sweep.post_lost_cards() == 1 and cards.posted == [rid]


async def test_a_decided_request_gets_no_card(session_factory, clock):
    rid = await pending_without_card(session_factory, clock)
    async with session_factory() as s, s.begin():
        req = await s.get(AccessRequest, rid)
        assert req is not None
        req.status = RequestStatus.CANCELLED
    cards = Cards()
    clock.advance(CARD_GRACE)
    assert await sweeps(session_factory, clock, cards).post_lost_cards() == 0 and cards.posted == []
