"""Narrative embeds and the outbox poster."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import types

import discord
import pytest
from sqlalchemy import select

from bot.controls import ControlMap
from bot.db.models import LedgerEntry, NarrativeOutbox
from bot.db.session import create_engine, create_session_factory
from bot.decisions.narrative import NO_PINGS, proof_lines, render_narrative
from bot.decisions.outbox import NarrativePoster
from bot.decisions.service import Decision, DecisionService, Outcome
from bot.ledger import Signer
from tests.helpers import T0

UNIX0 = int(T0.timestamp())


@pytest.fixture
def controls() -> ControlMap:
    return ControlMap.load_default()


def entry(**overrides) -> LedgerEntry:
    values = dict(
        id=17,
        guild_id=900,
        created_at=T0,
        outcome="granted",
        rule="scope:deploy",
        reason="Two approvers from sec-leads approved within the pending time.",
        proof={
            "scope": "deploy",
            "requester_id": 111,
            "subject_id": 111,
            "role_id": 222,
            "channel_id": 333,
            "request_id": 3,
            "grant_id": 4,
            "audit_log_entry_id": 123456789012345678,
            "duration_seconds": 5400,
            "expires_at": "2026-03-02T10:30:00.000000+00:00",
            "permissions": ["manage_messages", "attach_files"],
            "votes": [
                {"approver_id": 444, "approve": True, "at": "2026-03-02T08:55:00.000000+00:00"},
                {"approver_id": 555, "approve": False, "at": UNIX0, "reason": "not on call"},
            ],
            "before": {"role_ids": [1, 2], "allow_bits": 8},
            "subject_is_bot": False,
            "note": "**bold** @everyone",
        },
        controls=["SOC2:CC6.2", "ISO27001:A.5.18", "X:unknown"],
        actor_id=444,
        request_id=3,
        grant_id=4,
        prev_hash="0" * 64,
        hash="ab" * 32,
        signature="sig",
        key_id="0123456789abcdef",
    )
    values.update(overrides)
    return LedgerEntry(**values)


def test_grant_embed_fields_in_order(controls):
    embed = render_narrative(entry(), controls)
    assert embed.title == "Access granted"
    assert embed.colour == discord.Colour.green()
    assert [f.name for f in embed.fields] == ["Rule", "Reason", "Proof", "Control map"]
    rule, reason, proof, control_map = (f.value for f in embed.fields)
    assert rule == "`scope:deploy`"
    assert reason == "Two approvers from sec-leads approved within the pending time."
    lines = proof.splitlines()
    assert lines[:6] == [
        "scope: deploy",
        "requester: <@111>",
        "subject: <@111>",
        "role: <@&222>",
        "channel: <#333>",
        "request: `3`",
    ]
    assert "audit log entry: `123456789012345678`" in lines
    assert "duration: 1h 30m" in lines
    assert f"expires: <t:{UNIX0 + 5400}:f>" in lines
    assert "permissions: `manage_messages`, `attach_files`" in lines
    assert f"vote: ✓ <@444> at <t:{UNIX0 - 300}:f>" in lines
    assert f"vote: ✗ <@555> at <t:{UNIX0}:f> — not on call" in lines
    assert "before roles: <@&1>, <@&2>" in lines
    assert "before allow: `administrator`" in lines
    assert "subject is bot: no" in lines
    assert "note: \\*\\*bold\\*\\* @\u200beveryone" in lines  # user text cannot format or mention
    assert control_map.splitlines() == [
        "SOC2:CC6.2 — authorising and removing users",
        "ISO27001:A.5.18 — access rights",
        "X:unknown",
    ]
    assert embed.footer.text == "ledger #17 · sha256 abababababababab · key 0123456789abcdef"
    assert embed.timestamp == T0


@pytest.mark.parametrize(
    ("outcome", "title", "colour"),
    [
        ("denied", "Request denied", discord.Colour.red()),
        ("break-glass", "Break-glass access", discord.Colour.orange()),
        ("blocked", "Change blocked", discord.Colour.red()),
        ("alert", "Change needs attention", discord.Colour.orange()),
        ("expired", "Access expired", discord.Colour.light_grey()),
        ("requested", "Access requested", discord.Colour.blue()),
        ("allowed", "Change allowed", discord.Colour.green()),
        ("removal-stuck", "Access removal stuck", discord.Colour.red()),
        ("something-new", "Something new", discord.Colour.light_grey()),
    ],
)
def test_title_and_colour_by_outcome(controls, outcome, title, colour):
    embed = render_narrative(entry(outcome=outcome), controls)
    assert (embed.title, embed.colour) == (title, colour)


def test_every_outcome_has_a_title(controls):
    from bot.decisions.narrative import OUTCOME_STYLE

    assert {o.value for o in Outcome} == set(OUTCOME_STYLE)


def test_proof_with_plain_keys(controls):
    proof = {
        "request": 3,
        "requester": 111,
        "denied_by": 444,
        "requester_roles": [7, 8],
        "votes": [{"approver": 444, "approve": False, "at": "2026-03-02T09:00:00.000000+00:00"}],
    }
    assert proof_lines(proof) == [
        "request: `3`",
        "requester: <@111>",
        "denied by: <@444>",
        "requester roles: <@&7>, <@&8>",
        f"vote: ✗ <@444> at <t:{UNIX0}:f>",
    ]


def test_giant_proof_respects_discord_limits(controls):
    proof = {f"key_{i}": "x" * 200 for i in range(300)}
    proof["votes"] = [{"approver_id": i, "approve": True, "at": UNIX0} for i in range(500)]
    proof["role_ids"] = list(range(10**17, 10**17 + 2000))
    big = entry(proof=proof, reason="r" * 5000, rule="q" * 400, controls=["SOC2:CC6.2"] * 200)
    embed = render_narrative(big, controls)
    assert len(embed) <= 6000
    assert len(embed.fields) <= 25
    assert all(len(f.value) <= 1024 for f in embed.fields)
    assert len(embed.title) <= 256
    names = [f.name for f in embed.fields]
    assert names[:3] == ["Rule", "Reason", "Proof"] and names[-1] == "Control map"
    proof_text = "\n".join(f.value for f in embed.fields if f.name.startswith("Proof"))
    assert proof_text.splitlines()[-1].endswith("more, see ledger #17)")
    shown = len(proof_text.splitlines()) - 1
    assert f"… ({len(proof_lines(proof)) - shown} more, see ledger #17)" in proof_text
    assert embed.fields[-1].value.splitlines()[-1].startswith("… (")


def test_single_huge_value_is_cut(controls):
    embed = render_narrative(entry(proof={"reason": "y" * 10_000, "role_ids": list(range(5000))}), controls)
    proof_fields = [f.value for f in embed.fields if f.name.startswith("Proof")]
    assert [f.name for f in embed.fields] == ["Rule", "Reason", "Proof", "Proof (continued)", "Control map"]
    assert all(len(v) <= 1024 for v in proof_fields)
    assert proof_fields[0].endswith("y…")
    assert proof_fields[1].startswith("roles: <@&0>, <@&1>") and proof_fields[1].endswith(" more")


# ------------------------------------------------------------------ poster


class FakeChannel:
    def __init__(self, log: list, fail: Exception | None = None) -> None:
        self.log = log
        self.fail = fail
        self.ids = itertools.count(1000)

    async def send(self, **kwargs):
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.log.append((kwargs["embed"].footer.text, kwargs["allowed_mentions"]))
        return types.SimpleNamespace(id=next(self.ids))


async def record(session_factory, service, guild_id, n):
    ids = []
    for i in range(n):
        async with session_factory() as session, session.begin():
            e = await service.record(
                session,
                Decision(
                    outcome=Outcome.APPLIED,
                    rule="scope:deploy",
                    reason=f"grant {i}",
                    guild_id=guild_id,
                    proof={"subject_id": i},
                ),
            )
            ids.append(e.id)
    return ids


@pytest.fixture
def service(clock, controls):
    return DecisionService(Signer.generate(), controls, clock)


def posted_ids(sent):
    return [int(footer.split("#")[1].split(" ")[0]) for footer, _ in sent]


async def test_poster_posts_in_order_and_marks_posted(session_factory, clock, controls, service):
    ids = await record(session_factory, service, 900, 5)
    sent: list = []
    channel = FakeChannel(sent)

    async def resolve(guild_id):
        assert guild_id == 900
        return channel

    poster = NarrativePoster(session_factory, clock, controls, resolve)
    assert await poster.deliver_due() == 5
    assert posted_ids(sent) == ids
    assert all(mentions is NO_PINGS for _, mentions in sent)
    assert NO_PINGS.everyone is False and NO_PINGS.roles is False and NO_PINGS.users is False
    async with session_factory() as session:
        rows = (await session.scalars(select(NarrativeOutbox).order_by(NarrativeOutbox.entry_id))).all()
    assert all(r.posted_at == clock.now() and r.claimed_until is None for r in rows)
    assert [r.message_id for r in rows] == [1000, 1001, 1002, 1003, 1004]
    assert await poster.deliver_due() == 0
    assert len(sent) == 5


async def test_limit_is_respected(session_factory, clock, controls, service):
    ids = await record(session_factory, service, 900, 4)
    sent: list = []

    async def resolve(guild_id):
        return FakeChannel(sent)

    poster = NarrativePoster(session_factory, clock, controls, resolve)
    assert await poster.deliver_due(limit=3) == 3
    assert await poster.deliver_due(limit=3) == 1
    assert posted_ids(sent) == ids


async def test_failing_channel_backs_off_and_logs(session_factory, clock, controls, service, caplog):
    ids_a = await record(session_factory, service, 900, 2)
    ids_b = await record(session_factory, service, 901, 1)
    sent: list = []
    boom = discord.HTTPException(types.SimpleNamespace(status=500, reason="x"), "boom")
    channels = {900: FakeChannel(sent, fail=boom), 901: FakeChannel(sent)}

    async def resolve(guild_id):
        return channels[guild_id]

    poster = NarrativePoster(session_factory, clock, controls, resolve)
    with caplog.at_level(logging.WARNING, logger="bot.decisions.outbox"):
        assert await poster.deliver_due() == 1  # the other guild is not held up
    assert posted_ids(sent) == ids_b
    assert f"narrative for ledger #{ids_a[0]} in guild 900 not posted: HTTP 500" in caplog.text

    async with session_factory() as session:
        first, second = (
            await session.scalars(
                select(NarrativeOutbox)
                .where(NarrativeOutbox.guild_id == 900)
                .order_by(NarrativeOutbox.entry_id)
            )
        ).all()
    assert first.posted_at is None and first.attempts == 1
    assert first.next_attempt_at == clock.now() + dt.timedelta(seconds=5)
    assert first.claimed_until is None
    assert first.last_error == "HTTP 500 (code 0): boom"
    # The later entry waited behind the failed one (ledger order) and was not charged an attempt.
    assert second.posted_at is None and second.attempts == 0 and second.claimed_until is None

    # Not due yet: nothing happens, and the later entry stays behind.
    assert await poster.deliver_due() == 0
    clock.advance(dt.timedelta(seconds=5))
    assert await poster.deliver_due() == 0
    async with session_factory() as session:
        row = await session.get(NarrativeOutbox, first.id)
    assert row.attempts == 2 and row.next_attempt_at == clock.now() + dt.timedelta(seconds=10)

    # Discord recovers: both go out, in order.
    channels[900].fail = None
    clock.advance(dt.timedelta(seconds=10))
    assert await poster.deliver_due() == 2
    assert posted_ids(sent) == ids_b + ids_a


async def test_backoff_is_capped(session_factory, clock, controls):
    poster = NarrativePoster(session_factory, clock, controls, None)
    assert [poster.backoff(n).total_seconds() for n in (1, 2, 3, 8, 30)] == [5, 10, 20, 600, 600]


async def test_missing_channel_is_logged(session_factory, clock, controls, service, caplog):
    ids = await record(session_factory, service, 902, 1)

    async def resolve(guild_id):
        return None

    poster = NarrativePoster(session_factory, clock, controls, resolve)
    with caplog.at_level(logging.WARNING, logger="bot.decisions.outbox"):
        assert await poster.deliver_due() == 0
    assert (
        f"guild 902 has no governance channel Warden can post in; narrative for ledger #{ids[0]}"
        in caplog.text
    )
    async with session_factory() as session:
        row = (await session.scalars(select(NarrativeOutbox))).one()
    assert row.last_error == "governance channel not found" and row.attempts == 1


async def test_persistent_failure_stops_holding_later_entries(session_factory, clock, controls, service):
    ids = await record(session_factory, service, 900, 2)
    sent: list = []
    bad_id = ids[0]

    class PickyChannel(FakeChannel):
        async def send(self, **kwargs):
            if kwargs["embed"].footer.text.startswith(f"ledger #{bad_id} "):
                raise discord.HTTPException(
                    types.SimpleNamespace(status=400, reason="Bad"), "Invalid Form Body"
                )
            return await super().send(**kwargs)

    channel = PickyChannel(sent)

    async def resolve(guild_id):
        return channel

    poster = NarrativePoster(session_factory, clock, controls, resolve)
    for _ in range(NarrativePoster.HOLD_ATTEMPTS - 1):
        assert await poster.deliver_due() == 0
        clock.advance(dt.timedelta(minutes=10))
    # At its HOLD_ATTEMPTS-th failure the refused entry stops silencing the channel.
    assert await poster.deliver_due() == 1
    assert posted_ids(sent) == [ids[1]]
    async with session_factory() as session:
        row = (await session.scalars(select(NarrativeOutbox).where(NarrativeOutbox.entry_id == bad_id))).one()
    assert row.posted_at is None and row.attempts == NarrativePoster.HOLD_ATTEMPTS  # still retried


async def test_two_posters_racing_post_each_row_once(engine, db_url, clock, controls, service):
    guild_ids = [900, 901, 902]
    ids = {g: await record(create_session_factory(engine), service, g, 6) for g in guild_ids}
    second = create_engine(db_url)
    factories = [create_session_factory(engine), create_session_factory(second)]
    if engine.dialect.name == "sqlite":
        factories = [factories[0], factories[0]]  # SQLite: one process, one writer
    sent: dict[int, list] = {g: [] for g in guild_ids}

    async def resolve(guild_id):
        return FakeChannel(sent[guild_id])

    posters = [NarrativePoster(f, clock, controls, resolve) for f in factories]
    try:
        total = 0
        for _ in range(10):
            results = await asyncio.gather(*(p.deliver_due(limit=4) for p in posters))
            total += sum(results)
            if total == 18:
                break
        assert total == 18
    finally:
        await second.dispose()
    for g in guild_ids:
        assert posted_ids(sent[g]) == ids[g]  # exactly once each, in ledger order
    async with create_session_factory(engine)() as session:
        rows = (await session.scalars(select(NarrativeOutbox))).all()
    assert len(rows) == 18 and all(r.posted_at is not None for r in rows)
