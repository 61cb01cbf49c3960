"""Many grants ending at once: one sweep removes them all, and every role goes before any DM."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select

from bot.db.migrate import upgrade_to_head
from bot.db.models import Grant, GrantStatus
from bot.db.session import create_engine, create_session_factory
from bot.policy import load_policy
from sandbox.harness import SandboxWorld

POLICY = """
[guild.bulk]
approvals_channel = "approvals"
governance_channel = "governance"

[scope.deploy]
kind = "role"
role = "deployers"
max_duration = "2h"
approvers = ["leads"]
requesters = ["engineers"]
"""

HOLDERS = 12


async def seed(world: SandboxWorld, g, clock, count: int) -> None:
    """``count`` active grants of the role m0.. already hold, ending in a minute."""
    if world._engine is None:
        world._engine = create_engine(world.database_url)
        await upgrade_to_head(world._engine)
    now = clock.now()
    async with create_session_factory(world._engine)() as s, s.begin():
        await s.execute(
            insert(Grant),
            [
                {
                    "guild_id": g.id, "scope_id": "deploy", "subject_id": g.member(f"m{i}").id,
                    "kind": "role", "target_id": g.role("deployers").id, "status": GrantStatus.ACTIVE,
                    "duration_seconds": 60, "created_at": now, "applied_at": now,
                    "expires_at": now + dt.timedelta(minutes=1), "reminded_at": now,
                    "prior_recorded": True, "prior_held": False,
                }
                for i in range(count)
            ],
        )  # fmt: skip


async def test_one_sweep_removes_more_than_a_batch_and_tells_holders_after(tmp_path, db_url, clock) -> None:
    path = tmp_path / "bulk.toml"
    path.write_text(POLICY, encoding="utf-8")
    async with SandboxWorld(load_policy(path), database_url=db_url, clock=clock) as world:
        g = world.add_guild(
            {
                "name": "bulk",
                "roles": [{"name": "engineers"}, {"name": "leads"}, {"name": "deployers"}],
                "members": [{"name": f"m{i}", "roles": ["engineers", "deployers"]} for i in range(HOLDERS)],
                "channels": [{"name": "approvals"}, {"name": "governance"}],
            }
        )
        await seed(world, g, clock, HOLDERS)  # before Warden starts: they are its grants
        await world.start_bot()
        clock.advance(dt.timedelta(minutes=2))
        before = len(world.sb.request_log)

        report = await world.bot.services.grants.expire_due(limit=5)  # a batch is smaller than what is due

        assert report.expired == HOLDERS and report.removed == HOLDERS
        assert not any(g.member(f"m{i}").has_role("deployers") for i in range(HOLDERS))
        calls = list(world.sb.request_log)[before:]
        removals = [i for i, r in enumerate(calls) if r.method == "DELETE" and "/roles/" in r.path]
        dms = [i for i, r in enumerate(calls) if r.method == "POST" and r.path == "/users/@me/channels"]
        assert len(removals) == HOLDERS and len(dms) == HOLDERS
        assert max(removals) < min(dms), "a holder was told before every role was removed"
        async with create_session_factory(world._engine)() as s:
            left = await s.scalar(
                select(func.count()).select_from(Grant).where(Grant.status != GrantStatus.EXPIRED)
            )
        assert left == 0
        world.sb.conformance.assert_ok()


async def test_a_burst_of_narratives_is_one_summary_in_the_governance_channel(
    tmp_path, db_url, clock
) -> None:
    """A hundred and more decisions waiting at once are summarised, not posted one message each."""
    path = tmp_path / "bulk.toml"
    path.write_text(POLICY, encoding="utf-8")
    holders = 105
    async with SandboxWorld(load_policy(path), database_url=db_url, clock=clock) as world:
        g = world.add_guild(
            {
                "name": "bulk",
                "roles": [{"name": "engineers"}, {"name": "leads"}, {"name": "deployers"}],
                "members": [{"name": f"m{i}", "roles": ["engineers", "deployers"]} for i in range(holders)],
                "channels": [{"name": "approvals"}, {"name": "governance"}],
            }
        )
        await seed(world, g, clock, holders)
        await world.start_bot()
        governance = g.channel("governance")
        before = len(world.sb.messages(governance))
        clock.advance(dt.timedelta(minutes=2))
        await world.run_due()
        posted = world.sb.messages(governance)[before:]
        assert len(posted) == 1, [m.text[:80] for m in posted]
        assert f"{holders} decisions at once" in posted[0].text
        assert f"{holders} expired" in posted[0].text
        world.sb.conformance.assert_ok()
