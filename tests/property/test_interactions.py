"""Hostile slash options, forged buttons and deny forms, through the sandbox and discord.py.

Invariants: every interaction gets an answer that says what happened (never silence, never the
apology for an unexpected error, never a traceback), and a refusal writes nothing — the
requests, votes, grants, ledger and narrative outbox are exactly as before.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.approvals.cards import VOTE_TEMPLATE
from bot.db.models import MAX_ROW_ID, AccessRequest, Grant, LedgerEntry, NarrativeOutbox, Vote
from bot.escape import typed
from sandbox.errors import SandboxError
from tests.helpers import PROPERTY_EXAMPLES, discord_option, hostile_text, property_settings

SANDBOX = property_settings(max(10, PROPERTY_EXAMPLES // 2))
APOLOGY = "Something went wrong on Warden's side"
MEMBERS = ["alice", "bob", "carol", "dave", "erin", "ci-bot", "owner"]
TABLES = (AccessRequest, Vote, Grant, LedgerEntry, NarrativeOutbox)
# Ids run from 1 to MAX_ROW_ID; the options say so, and Discord refuses other numbers itself.
discord_ints = st.one_of(st.integers(1, MAX_ROW_ID), st.sampled_from([1, 2, MAX_ROW_ID]))


async def counts(world) -> dict[str, int]:
    async with world.bot.session_factory() as s:
        return {t.__tablename__: await s.scalar(select(func.count()).select_from(t)) for t in TABLES}


def member(world, name: str):
    g = world.guild
    return g.owner if name == "owner" else g.member(name)


def assert_answered(out) -> str:
    text = out.text if out.modal is None else str(out.modal.get("title"))
    assert text.strip(), "the person got no words"
    assert APOLOGY not in text, text
    assert "Traceback" not in text
    return text


# ---- slash options -----------------------------------------------------------------------------


@SANDBOX
@given(
    who=st.sampled_from(MEMBERS),
    scope=st.one_of(st.sampled_from(["deploy", "incident-room", "bot-webhooks", "DEPLOY "]), hostile_text),
    duration=st.one_of(st.none(), st.sampled_from(["30m", "1h", "9h", "0s"]), hostile_text),
    reason=st.one_of(st.none(), hostile_text),
    subject=st.one_of(st.none(), st.sampled_from(MEMBERS)),
)
@example(who="alice", scope="deploy", duration="1h", reason="\x00 why", subject=None)  # NUL, as above
# Once quoted back whole: answers longer than Discord's 2000 characters, which Discord refuses.
@example(who="alice", scope="0" * 6000, duration=None, reason=None, subject=None)
@example(who="alice", scope="deploy", duration="9" * 6000, reason="x", subject=None)
async def test_jit_request_answers_every_option_and_refusals_write_nothing(
    world, who: str, scope: str, duration: str | None, reason: str | None, subject: str | None
) -> None:
    options: dict[str, Any] = {"scope": discord_option(scope)}
    if duration is not None:
        options["duration"] = discord_option(duration)
    if reason is not None:
        options["reason"] = discord_option(reason)
    if subject is not None:
        options["for"] = member(world, subject)
    before = await counts(world)
    out = await world.sb.slash(world.guild, member(world, who), "jit request", options)
    text = assert_answered(out)
    assert out.ephemeral
    after = await counts(world)
    if after["requests"] == before["requests"]:
        assert after == before, f"a refusal wrote something: {text}"
    else:
        assert re.search(r"Request #\d+", text), text


@SANDBOX
@given(
    who=st.sampled_from(MEMBERS),
    scope=st.one_of(st.sampled_from(["breakglass-admin", "deploy"]), hostile_text),
    reason=hostile_text,
)
@example(who="dave", scope="breakglass-admin", reason="\x00")  # nothing left once NUL is dropped
async def test_jit_breakglass_answers_every_option_and_refusals_write_nothing(
    world, who: str, scope: str, reason: str
) -> None:
    before = await counts(world)
    options = {"scope": discord_option(scope), "reason": discord_option(reason)}
    out = await world.sb.slash(world.guild, member(world, who), "jit breakglass", options)
    text = assert_answered(out)
    after = await counts(world)
    if after["requests"] == before["requests"]:
        assert after == before, f"a refusal wrote something: {text}"
    else:
        assert "Break-glass" in text, text


@SANDBOX
@given(
    who=st.sampled_from(MEMBERS),
    command=st.sampled_from(["jit revoke", "jit extend", "jit cancel"]),
    number=discord_ints,
    duration=st.one_of(st.sampled_from(["30m", "1h"]), hostile_text),
    reason=st.one_of(st.none(), hostile_text),
)
async def test_commands_naming_a_grant_or_request_answer_any_number(
    world, who: str, command: str, number: int, duration: str, reason: str | None
) -> None:
    options: dict[str, Any] = {"request" if command == "jit cancel" else "grant": number}
    if command == "jit extend":
        options["duration"] = discord_option(duration)
    if reason is not None and command != "jit cancel":
        options["reason"] = discord_option(reason)
    before = await counts(world)
    out = await world.sb.slash(world.guild, member(world, who), command, options)
    assert_answered(out)
    assert await counts(world) == before  # nothing names a real row here: every answer is a refusal


@example(number=2**31)  # once the apology: PostgreSQL's integer ids overflowed in the query
@example(number=0)
@given(number=st.integers(-(2**53), 2**53).filter(lambda n: not 1 <= n <= MAX_ROW_ID))
@SANDBOX
async def test_ids_out_of_range_are_refused_before_warden(world, number: int) -> None:
    """Discord refuses an id option outside 1..MAX_ROW_ID (min_value/max_value), so no query sees it."""
    with pytest.raises(SandboxError, match=r"< min|> max"):
        await world.sb.slash(world.guild, world.guild.member("alice"), "jit revoke", grant=number)


# ---- buttons ----------------------------------------------------------------------------------

forged_ids = st.one_of(
    st.builds(
        lambda n, c: f"warden:vote:{n}:{c}", st.integers(0, 10**18), st.sampled_from(["approve", "deny"])
    ),
    st.builds(lambda n: f"warden:review:{n}", st.integers(0, 10**18)),
    st.builds(lambda rest: f"warden:{rest}", st.text(max_size=40)),
    st.sampled_from(
        ["warden:vote:1:maybe", "warden:vote::approve", "warden:review:-1", "warden:", "warden:deny:1"]
    ),
)


async def a_pending_card(world):
    """The card of a request alice made (made once, reused by every example)."""
    g = world.guild
    cards = [m for m in world.sb.messages(g.channel("approvals")) if "Access request" in m.text]
    if not cards:
        out = await world.sb.slash(
            g, g.member("alice"), "jit request", scope="deploy", duration="1h", reason="x"
        )
        assert "waiting for approval" in out.text, out.text
        cards = [m for m in world.sb.messages(g.channel("approvals")) if "Access request" in m.text]
    return cards[0]


def names_a_real_row(custom_id: str, card) -> bool:
    """A well-formed id of the card's own request: a legitimate click, which may count a vote."""
    match = re.fullmatch(VOTE_TEMPLATE, custom_id)
    return bool(match) and f"#{int(match['request_id'])}" in card.text


@SANDBOX
@given(who=st.sampled_from(MEMBERS), custom_id=forged_ids)
@example(who="bob", custom_id="warden:vote:1:maybe")  # once unanswered ("interaction failed")
@example(who="bob", custom_id="warden:deny:1")
@example(who="bob", custom_id="warden:vote:999999999999999999:approve")  # once the apology on PostgreSQL
@example(who="bob", custom_id="warden:review:999999999999999999")
async def test_forged_buttons_get_an_answer_and_write_nothing(world, who: str, custom_id: str) -> None:
    card = await a_pending_card(world)
    before = await counts(world)
    out = await world.sb.click(member(world, who), card, custom_id=custom_id[:100], forged=True)
    assert_answered(out)
    if not names_a_real_row(custom_id[:100], card):  # no break-glass grant exists to review either
        assert await counts(world) == before


# ---- the deny form ----------------------------------------------------------------------------


@SANDBOX
@given(reason=st.one_of(hostile_text.map(lambda t: (t or " ")[:400]), st.text(min_size=1, max_size=400)))
@example(reason="   ")
@example(reason="\x00")  # once the apology on PostgreSQL (text cannot hold NUL)
@example(reason="@everyone [click](https://evil.example) <@&123456789012345678>")
async def test_any_deny_reason_is_answered_and_shown_as_typed(world, reason: str) -> None:
    g = world.guild
    out = await world.sb.slash(g, g.member("alice"), "jit request", scope="deploy", duration="1h", reason="x")
    request_id = int(re.search(r"Request #(\d+)", out.text)[1])
    card = next(
        m for m in world.sb.messages(g.channel("approvals")) if f"Access request #{request_id}" in m.text
    )
    modal = await world.sb.click(g.member("bob"), card, "Deny")
    assert modal.modal is not None
    before = await counts(world)
    out = await world.sb.submit_modal(g.member("bob"), modal, reason=reason)
    text = assert_answered(out)
    after = await counts(world)
    if not typed(reason):  # nothing but spaces or control characters
        assert "needs a reason" in text and after == before
        return
    assert after["votes"] == before["votes"] + 1, text

    def current() -> str:
        return next(m for m in world.sb.messages(g.channel("approvals")) if m.id == card.id).text

    await world.eventually(lambda: "Denied by" in current())
    assert "<@&123456789012345678>" not in current() and "[click](https" not in current()


forged_forms = st.one_of(
    st.builds(lambda rest: f"warden:deny:{rest}", st.text(max_size=30)),
    st.builds(lambda n: f"warden:deny:{n}", st.integers(0, 10**30)),
    st.builds(lambda rest: f"warden:{rest}", st.text(max_size=30)),
)


@SANDBOX
@given(custom_id=forged_forms, reason=st.one_of(hostile_text.map(lambda t: (t or "x")[:400])))
@example(custom_id="warden:deny:²", reason="no")  # a Unicode digit: int() refused it
@example(custom_id="warden:deny:99999999999999999999", reason="no")  # beyond the integer keys
@example(custom_id="warden:approve:1", reason="no")  # no such form: once unanswered
async def test_forged_deny_forms_get_an_answer_and_write_nothing(world, custom_id: str, reason: str) -> None:
    """A modified client sends the deny form back under another id: only the real one may count."""
    card = await a_pending_card(world)
    modal = await world.sb.click(world.guild.member("bob"), card, "Deny")
    assert modal.modal is not None
    custom_id = custom_id[:100]
    assume(custom_id != modal.modal["custom_id"])  # the real form, sent back as it came, may count
    before = await counts(world)
    out = await world.sb.submit_modal(
        world.guild.member("bob"), modal, forged_custom_id=custom_id, reason=reason
    )
    assert_answered(out)
    assert await counts(world) == before
