"""The campaign's and the soak's judge: each invariant of sandbox/invariants.py reports a violation
when Discord's audit log shows it broken (so a clean campaign means something)."""

from __future__ import annotations

import datetime as dt

from bot.clock import ManualClock
from bot.db.models import AccessRequest, Grant, GrantStatus, RequestKind, RequestStatus
from sandbox.harness import build_guild
from sandbox.invariants import check, standing_roles
from sandbox.server import SandboxDiscord

HOUR = dt.timedelta(hours=1)
SPEC = {
    "name": "judge",
    "roles": [{"name": "engineers"}, {"name": "deployers"}],
    "members": [{"name": "alice", "roles": ["engineers"]}, {"name": "carol", "roles": ["deployers"]}],
    "channels": [{"name": "governance"}],
}


class World:
    def __init__(self, factory) -> None:
        self.clock = ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), frozen=True)
        self.sb = SandboxDiscord(clock=self.clock)
        self.g = build_guild(self.sb, SPEC)
        self.standing = {self.g.id: standing_roles(self.g)}
        self.factory = factory

    async def grant(self, *, status=GrantStatus.EXPIRED, hours: int = 1, extended: int = 0) -> int:
        now = self.clock.now()
        async with self.factory() as s, s.begin():
            req = AccessRequest(
                guild_id=self.g.id, scope_id="deploy", requester_id=1, subject_id=1,
                duration_seconds=hours * 3600, status=RequestStatus.APPROVED, created_at=now, pending_until=now,
            )  # fmt: skip
            s.add(req)
            await s.flush()
            grant = Grant(
                guild_id=self.g.id, scope_id="deploy", request_id=req.id, subject_id=1, kind="role",
                target_id=self.g.role("deployers").id, status=status, duration_seconds=hours * 3600,
                created_at=now,
            )  # fmt: skip
            s.add(grant)
            await s.flush()
            if extended:
                s.add(
                    AccessRequest(
                        guild_id=self.g.id, scope_id="deploy", kind=RequestKind.EXTENSION, requester_id=1,
                        subject_id=1, duration_seconds=extended * 3600, status=RequestStatus.APPROVED,
                        extends_grant_id=grant.id, created_at=now, pending_until=now,
                    )
                )  # fmt: skip
            return grant.id

    def change(self, who: str, grant_id: int, *, add: bool) -> None:
        member, role = self.g.member(who), self.g.role("deployers")
        actor = self.sb.bot_user.id
        reason = f"Warden grant #{grant_id} (request #1, scope deploy) {'applied' if add else 'expired'}"
        self.sb._apply_member_roles(
            self.g, member, [role] if add else [], [] if add else [role], actor_id=actor, reason=reason
        )

    async def findings(self):
        return await check(self.sb, [self.g], self.factory, self.standing, now=self.clock.now())


async def test_a_grant_removed_within_a_minute_of_its_end_is_fine(session_factory):
    w = World(session_factory)
    gid = await w.grant(hours=1, extended=1)
    w.change("alice", gid, add=True)
    w.clock.advance(2 * HOUR + dt.timedelta(seconds=50))  # 1 h approved + 1 h extension, removed 50 s late
    w.change("alice", gid, add=False)
    found = await w.findings()
    assert found.violations == []
    assert (found.applied, found.removed) == (1, 1)
    assert found.worst_late == dt.timedelta(seconds=50)


async def test_a_grant_outliving_its_end_by_more_than_a_minute_is_a_violation(session_factory):
    w = World(session_factory)
    gid = await w.grant(hours=1)
    w.change("alice", gid, add=True)
    w.clock.advance(HOUR + dt.timedelta(seconds=61))
    w.change("alice", gid, add=False)
    assert any("outlived its approved end by 61.0 s" in v for v in (await w.findings()).violations)


async def test_a_role_still_in_place_after_its_grant_ended_is_a_violation(session_factory):
    w = World(session_factory)
    gid = await w.grant(hours=1, status=GrantStatus.REVOKED)
    w.change("alice", gid, add=True)
    violations = (await w.findings()).violations
    assert any("ended but its role is still in place" in v for v in violations)


async def test_applying_twice_and_taking_standing_access_are_violations(session_factory):
    w = World(session_factory)
    gid = await w.grant(hours=1)
    w.change("alice", gid, add=True)
    w.change("alice", gid, add=False)
    w.change("alice", gid, add=True)
    w.change("alice", gid, add=False)
    w.change("carol", gid, add=False)  # carol held deployers before Warden did anything
    violations = (await w.findings()).violations
    assert any(f"grant #{gid} was applied 2 times" in v for v in violations)
    assert any("standing access taken away" in v for v in violations)
    assert any("member carol lost standing role" in v for v in violations)


async def test_a_grant_left_half_done_is_a_violation(session_factory):
    w = World(session_factory)
    await w.grant(hours=1, status=GrantStatus.APPLYING)
    assert any("never ended: it is still applying" in v for v in (await w.findings()).violations)
