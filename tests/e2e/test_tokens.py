"""Scopes of kind `token`, through the sandbox: approved like any scope, delivered once by DM, stored
only as a hash, verified (each check a recorded use), ended with the grant, revoked when dormant."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re

import pytest
from sqlalchemy import select

from bot.db.models import AccessToken, Grant, GrantStatus, LedgerEntry, NarrativeOutbox, TokenStatus
from bot.logs import FieldsFormatter, _Redact
from bot.tokens.service import VerifyOutcome
from tests.helpers import example_policy_with

TOKEN = re.compile(r"wdn1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}")


async def request_token(world, who: str = "alice", duration: str = "2h"):
    g = world.guild
    out = await world.sb.slash(
        g, g.member(who), "jit request", scope="deploy-api", duration=duration, reason="deploy 4.2"
    )
    assert "waiting for approval" in out.text, out.text
    card = next(m for m in world.sb.messages(g.channel("approvals")) if "deploy-api" in m.text)
    return await world.sb.click(g.member("bob"), card, "Approve")


def tokens_in_dms(world, who: str) -> list[str]:
    return [t for m in world.sb.dms(world.guild.member(who)) for t in TOKEN.findall(m.text)]


async def rows(world, model):
    async with world.bot.session_factory() as s:
        return list((await s.execute(select(model))).scalars())


async def test_token_issued_once_verified_and_ended_with_its_grant(world, caplog):
    caplog.set_level(logging.DEBUG)
    await request_token(world)
    dm = await world.sb.wait_for_message(world.guild.member("alice"), contains="only this once")
    assert "deploy-api" in dm.text
    [token] = tokens_in_dms(world, "alice")  # exactly one message ever shows it

    [row] = await rows(world, AccessToken)
    assert row.secret_sha256 == hashlib.sha256(token.encode()).hexdigest()
    [grant] = await rows(world, Grant)
    assert grant.status == GrantStatus.ACTIVE and row.grant_id == grant.id
    assert row.expires_at == grant.expires_at  # it never outlives its grant

    check = await world.bot.services.tokens.verify(token)
    assert check.outcome is VerifyOutcome.VALID and check.info is not None
    assert check.info.scope_id == "deploy-api" and check.info.subject_id == world.guild.member("alice").id
    assert (await world.bot.services.tokens.verify(token)).info.use_count == 2  # each check is a recorded use
    [row] = await rows(world, AccessToken)
    assert row.use_count == 2 and row.last_used_at == world.clock.now()

    # The grant expires: its token is revoked with it, and the holder is told.
    report = await world.advance(dt.timedelta(hours=2))
    assert report.expired == 1
    assert (await world.bot.services.tokens.verify(token)).outcome in (
        VerifyOutcome.REVOKED,
        VerifyOutcome.EXPIRED,
    )
    [row] = await rows(world, AccessToken)
    assert row.status == TokenStatus.REVOKED and "expired" in (row.revoke_reason or "")
    await world.sb.wait_for_message(world.guild.member("alice"), contains="has ended")
    assert tokens_in_dms(world, "alice") == [token]  # never shown a second time

    # Nowhere else: not in the ledger, the narratives or the logs (even discord.py's DEBUG lines).
    await world.settle()
    for entry in await rows(world, LedgerEntry):
        assert token not in str(entry.__dict__)
    for queued in await rows(world, NarrativeOutbox):
        assert token not in str(queued.__dict__)
    for m in world.sb.messages(world.guild.channel("governance")):
        assert token not in m.text
    formatter = _Redact(FieldsFormatter("%(message)s"))
    leaked = [(r.name, formatter.format(r)[:200]) for r in caplog.records if token in formatter.format(r)]
    assert not leaked, leaked
    granted = next(
        m
        for m in world.sb.messages(world.guild.channel("governance"))
        if "token" in m.text and "granted" in m.text.lower()
    )
    assert f"access token {row.id}" in granted.text


async def test_revoking_the_grant_revokes_its_token(world):
    await request_token(world)
    await world.sb.wait_for_message(world.guild.member("alice"), contains="only this once")
    [token] = tokens_in_dms(world, "alice")
    [grant] = await rows(world, Grant)
    mine = await world.sb.slash(world.guild, world.guild.member("alice"), "jit mine")
    assert "deploy-api" in mine.text and token not in mine.text  # listed, never shown again
    out = await world.sb.slash(world.guild, world.guild.member("alice"), "jit revoke", grant=grant.id)
    assert "revoked" in out.text.lower(), out.text
    assert (await world.bot.services.tokens.verify(token)).outcome is VerifyOutcome.REVOKED
    [row] = await rows(world, AccessToken)
    assert row.status == TokenStatus.REVOKED and f"grant #{grant.id} revoked" in (row.revoke_reason or "")


async def test_closed_dms_fail_the_grant_visibly_and_leave_no_live_token(world):
    g = world.guild
    g.member("alice").dms_open = False
    await request_token(world)
    await world.settle()
    [grant] = await rows(world, Grant)
    assert grant.status == GrantStatus.FAILED and "50007" in (grant.last_error or "")
    [row] = await rows(world, AccessToken)
    assert row.status == TokenStatus.REVOKED  # issued, undeliverable, revoked at once
    failed = next(m for m in world.sb.messages(g.channel("governance")) if "could not give grant" in m.text)
    assert "50007" in failed.text and "request again" in failed.text
    card = next(m for m in world.sb.messages(g.channel("approvals")) if "deploy-api" in m.text)
    assert "Failed — nothing was granted" in card.text and "50007" in card.text
    assert not tokens_in_dms(world, "alice")


@pytest.fixture
def policy(tmp_path):
    return example_policy_with(tmp_path, 'token_dormant_after = "30d"', 'token_dormant_after = "1h"')


async def test_dormant_token_is_revoked_recorded_and_its_holder_told(world):
    g = world.guild
    await request_token(world, duration="4h")
    await world.sb.wait_for_message(g.member("alice"), contains="only this once")
    [token] = tokens_in_dms(world, "alice")

    await world.advance(dt.timedelta(minutes=30))
    assert (await world.bot.services.tokens.verify(token)).valid  # a use: dormancy counts from here
    report = await world.advance(dt.timedelta(minutes=59))
    assert report.tokens_revoked == 0 and (await world.bot.services.tokens.verify(token)).valid
    report = await world.advance(dt.timedelta(minutes=61))  # 61 minutes after the last use
    assert report.tokens_revoked == 1
    assert (await world.bot.services.tokens.verify(token)).outcome is VerifyOutcome.REVOKED
    [row] = await rows(world, AccessToken)
    assert row.status == TokenStatus.REVOKED and (row.revoke_reason or "").startswith("dormant")
    [grant] = await rows(world, Grant)
    assert grant.status == GrantStatus.REVOKED  # the grant ends with its token

    dm = await world.sb.wait_for_message(g.member("alice"), contains="was revoked")
    assert f"access token {row.id}" in dm.text.lower() and "dormant" in dm.text
    await world.sb.wait_for_message(g.member("alice"), contains="ended early by Warden")
    await world.settle()
    narrative = next(
        m for m in world.sb.messages(g.channel("governance")) if "revoked it as dormant" in m.text
    )
    assert "guild.token_dormant_after" in narrative.text
    ok, problems = await world.ledger_verifies()
    assert ok, problems
    report = await world.advance(dt.timedelta(hours=1))
    assert report.tokens_revoked == 0  # once


async def test_an_extended_grant_keeps_its_token_to_the_new_end(world):
    g = world.guild
    await request_token(world, duration="2h")
    await world.sb.wait_for_message(g.member("alice"), contains="only this once")
    [token] = tokens_in_dms(world, "alice")
    world.clock.advance(dt.timedelta(seconds=31))  # past the request cooldown
    out = await world.sb.slash(
        g, g.member("alice"), "jit extend", grant=1, duration="1h", reason="slow deploy"
    )
    assert "Extension request #2" in out.text, out.text
    card = next(m for m in world.sb.messages(g.channel("approvals")) if "#2" in m.text)
    await world.sb.click(g.member("bob"), card, "Approve")
    await world.sb.wait_for_message(g.member("alice"), contains="was extended")
    [grant] = await rows(world, Grant)
    [row] = await rows(world, AccessToken)
    assert row.expires_at == grant.expires_at  # never outlives it, and now lasts as long
    for _ in range(3):  # used every 50 minutes, so never dormant (1h in this module's policy)
        await world.advance(dt.timedelta(minutes=50))
        assert (await world.bot.services.tokens.verify(token)).valid  # the last: past the first end
    assert tokens_in_dms(world, "alice") == [token]  # the extension shows no token
    await world.advance(dt.timedelta(minutes=31))
    assert (await world.bot.services.tokens.verify(token)).outcome is VerifyOutcome.REVOKED  # with its grant
