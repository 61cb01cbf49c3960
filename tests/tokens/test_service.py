"""Tokens: issued once, stored as a hash, verified in constant time, expiring, revoked when dormant."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import pickle

import pytest
from sqlalchemy import select, text

from bot.db.models import AccessToken, TokenStatus
from bot.services.errors import AlreadyDecided, BadInput, NotFound
from bot.tokens.service import TokenService, VerifyOutcome

H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


@pytest.fixture
def tokens(session_factory, clock) -> TokenService:
    return TokenService(session_factory, clock)


async def _issue(tokens: TokenService, **kw):
    args = {"guild_id": 1, "scope_id": "ci-deploy", "subject_id": 42, "ttl": 8 * H} | kw
    return await tokens.issue(**args)


async def test_issue_stores_only_a_hash_and_hides_the_value(tokens, session_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    issued = await _issue(tokens, grant_id=7)
    value = issued.value.reveal()
    assert value.startswith("wdn1.") and len(value) > 60
    assert value not in repr(issued) and value not in str(issued.value)
    assert "hidden" in repr(issued.value)
    with pytest.raises(TypeError):
        pickle.dumps(issued.value)
    async with session_factory() as s:
        row = (await s.execute(select(AccessToken))).scalar_one()
        dumped = (await s.execute(text("SELECT * FROM access_tokens"))).all()
    assert row.secret_sha256 == hashlib.sha256(value.encode()).hexdigest()
    secret = value.rsplit(".", 1)[1]
    assert all(secret not in str(v) for v in dumped[0])
    assert value not in caplog.text and secret not in caplog.text
    assert issued.info.expires_at - issued.info.created_at == 8 * H


async def test_verify_records_each_use(tokens, clock) -> None:
    issued = await _issue(tokens)
    value = issued.value.reveal()
    clock.advance(H)
    first = await tokens.verify(value)
    assert first.valid and first.info is not None
    assert first.info.use_count == 1 and first.info.last_used_at == clock.now()
    clock.advance(H)
    second = await tokens.verify(value)
    assert second.info is not None and second.info.use_count == 2 and second.info.last_used_at == clock.now()


async def test_wrong_malformed_and_unknown_tokens(tokens) -> None:
    issued = await _issue(tokens)
    value = issued.value.reveal()
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
    assert (await tokens.verify(tampered)).outcome is VerifyOutcome.UNKNOWN
    assert (await tokens.verify("wdn1.0123456789abcdef." + "x" * 43)).outcome is VerifyOutcome.UNKNOWN
    assert (await tokens.verify("hello")).outcome is VerifyOutcome.MALFORMED
    assert (await tokens.verify("")).outcome is VerifyOutcome.MALFORMED
    # failed checks record no use
    assert (await tokens.get(issued.info.id)).use_count == 0


async def test_expiry_with_the_clock_and_with_the_grant(tokens, clock) -> None:
    grant_end = clock.now() + 2 * H
    issued = await _issue(tokens, grant_id=9, not_after=grant_end)
    assert issued.info.expires_at == grant_end  # never outlives its grant
    clock.advance(2 * H)
    check = await tokens.verify(issued.value.reveal())
    assert check.outcome is VerifyOutcome.EXPIRED and check.info is not None and check.info.use_count == 0
    expired = await tokens.expire_due(clock.now())
    assert [t.id for t in expired] == [issued.info.id] and expired[0].status == TokenStatus.EXPIRED
    assert await tokens.expire_due(clock.now()) == []


async def test_revoke_for_grant(tokens) -> None:
    a = await _issue(tokens, grant_id=5)
    b = await _issue(tokens, grant_id=5)
    other = await _issue(tokens, grant_id=6)
    ended = await tokens.revoke_for_grant(5)
    assert sorted(t.id for t in ended) == sorted([a.info.id, b.info.id])
    assert (await tokens.verify(a.value.reveal())).outcome is VerifyOutcome.REVOKED
    assert (await tokens.verify(other.value.reveal())).valid
    assert await tokens.revoke_for_grant(5) == []


async def test_revoke_dormant_measures_from_last_use(tokens, clock) -> None:
    used = await _issue(tokens, ttl=30 * D)
    unused = await _issue(tokens, ttl=30 * D)
    short = await _issue(tokens, ttl=H)  # expires before it could be dormant: left to expiry
    clock.advance(5 * D)
    assert (await tokens.verify(used.value.reveal())).valid
    clock.advance(3 * D)  # unused idle 8 days, used idle 3 days
    revoked = await tokens.revoke_dormant(clock.now(), 7 * D)
    assert [t.id for t in revoked] == [unused.info.id]
    assert revoked[0].revoke_reason == "dormant: not used for 7d"
    assert revoked[0].revoked_at == clock.now()
    assert (await tokens.verify(unused.value.reveal())).outcome is VerifyOutcome.REVOKED
    assert (await tokens.get(short.info.id)).status == TokenStatus.ACTIVE
    clock.advance(5 * D)
    assert [t.id for t in await tokens.revoke_dormant(clock.now(), 7 * D)] == [used.info.id]


async def test_revoke_and_bad_input(tokens, clock) -> None:
    issued = await _issue(tokens)
    info = await tokens.revoke(issued.info.id, reason="owner said revoke")
    assert info.status == TokenStatus.REVOKED and info.revoke_reason == "owner said revoke"
    with pytest.raises(AlreadyDecided):
        await tokens.revoke(issued.info.id, reason="again")
    with pytest.raises(NotFound):
        await tokens.revoke(999, reason="x")
    with pytest.raises(BadInput):
        await _issue(tokens, ttl=dt.timedelta(0))
    with pytest.raises(BadInput):
        await _issue(tokens, ttl=31 * D)
    with pytest.raises(BadInput):
        await _issue(tokens, not_after=clock.now())
    with pytest.raises(BadInput):
        await tokens.revoke_dormant(clock.now(), dt.timedelta(0))
    assert len(await tokens.list_tokens(1)) == 1  # refusals wrote nothing
