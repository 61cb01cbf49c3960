"""Enum columns: Python sees the enum member; the database stores the same plain text as before."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from bot.db.models import AccessRequest, Grant, GrantStatus, RequestKind, RequestStatus


async def test_enum_columns_round_trip_as_plain_text(session_factory, clock) -> None:
    now = clock.now()
    async with session_factory() as session, session.begin():
        req = AccessRequest(
            guild_id=1,
            scope_id="deploy",
            requester_id=2,
            subject_id=2,
            duration_seconds=60,
            created_at=now,
            pending_until=now + dt.timedelta(hours=1),
        )
        session.add(req)
        await session.flush()
        grant = Grant(
            guild_id=1,
            scope_id="deploy",
            request_id=req.id,
            subject_id=2,
            kind="role",
            target_id=3,
            duration_seconds=60,
            created_at=now,
            status=GrantStatus.REMOVING,
            final_status="expired",  # a plain string is accepted and stored the same way
        )
        session.add(grant)
    async with session_factory() as session:
        raw = (
            await session.execute(
                text("SELECT status, final_status FROM grants WHERE id = :id"), {"id": grant.id}
            )
        ).one()
        assert tuple(raw) == ("removing", "expired")
        raw_req = (await session.execute(text("SELECT kind, status FROM requests"))).one()
        assert tuple(raw_req) == ("new", "pending")
        loaded = (await session.execute(select(Grant))).scalar_one()
        assert loaded.status is GrantStatus.REMOVING and loaded.final_status is GrantStatus.EXPIRED
        loaded_req = (await session.execute(select(AccessRequest))).scalar_one()
        assert loaded_req.kind is RequestKind.NEW and loaded_req.status is RequestStatus.PENDING


async def test_unknown_value_is_refused(session_factory, clock) -> None:
    now = clock.now()
    with pytest.raises(Exception, match="not a valid GrantStatus"):
        async with session_factory() as session, session.begin():
            session.add(
                Grant(
                    guild_id=1,
                    scope_id="x",
                    subject_id=2,
                    kind="role",
                    target_id=3,
                    duration_seconds=60,
                    created_at=now,
                    status="actve",
                )
            )
