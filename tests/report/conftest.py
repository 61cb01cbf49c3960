"""A ledger filled by the real bot: decisions made through the sandbox, then reported on."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.ledger import Signer
from bot.policy import load_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
HOSTILE_REASON = "<script>alert('x')</script> release 4.2 & \"hotfix\""


@dataclass
class Populated:
    world: SandboxWorld
    signer: Signer
    key_path: Path
    database_url: str
    names: dict[str, int]


def card(world: SandboxWorld, request_id: int):
    return next(m for m in world.sb.messages(world.guild.channel("approvals")) if f"#{request_id}" in m.text)


async def populate(world: SandboxWorld) -> None:
    """Two days of decisions: quorum approvals, a denial, an auto-approval, a revocation,
    break-glass with its review, and expiries, each made by clicking in the sandbox."""
    g, sb = world.guild, world.sb
    alice, bob, carol, dave = (g.member(n) for n in ("alice", "bob", "carol", "dave"))

    # Request #1: approved by bob after 10 minutes and carol after 25; expires two hours later.
    await sb.slash(g, alice, "jit request", scope="deploy", duration="2h", reason=HOSTILE_REASON)
    await world.advance(dt.timedelta(minutes=10))
    await sb.click(bob, card(world, 1), "Approve")
    await world.advance(dt.timedelta(minutes=15))
    await sb.click(carol, card(world, 1), "Approve")
    assert alice.has_role("deployers")
    await world.advance(dt.timedelta(hours=2, minutes=1))
    assert not alice.has_role("deployers")

    # Request #2: denied by bob, with a reason that is user text too.
    await sb.slash(g, alice, "jit request", scope="deploy", duration="1h", reason="again")
    modal = await sb.click(bob, card(world, 2), "Deny")
    await sb.submit_modal(bob, modal, reason="no change ticket <b>yet</b>")

    # Next day: dave is auto-approved (on-call, 30m), then bob revokes it early.
    await world.advance(dt.timedelta(days=1))
    await sb.slash(g, dave, "jit request", scope="deploy", duration="30m", reason="restart workers")
    out = await sb.slash(g, bob, "jit revoke", grant=2, reason="done early")
    assert "revoked" in out.text

    # Break-glass by dave, reviewed by bob 40 minutes later.
    out = await sb.slash(g, dave, "jit breakglass", scope="breakglass-admin", reason="prod down")
    assert dave.has_role("emergency")
    await world.advance(dt.timedelta(minutes=40))
    review = await sb.wait_for_message(g.channel("approvals"), contains="Break-glass review")
    await sb.click(bob, review, "Acknowledge review")

    # Request #5: approved after an hour, still active when the report is written.
    await sb.slash(g, alice, "jit request", scope="deploy", duration="3h", reason="release 4.3")
    await world.advance(dt.timedelta(hours=1))
    await sb.click(carol, card(world, 5), "Approve")
    await sb.click(bob, card(world, 5), "Approve")
    await world.settle()
    ok, problems = await world.ledger_verifies()
    assert ok, problems


@pytest.fixture
async def populated(db_url: str, tmp_path: Path) -> AsyncIterator[Populated]:
    async with populated_world(db_url, tmp_path) as p:
        yield p


def populated_world(database_url: str, tmp_path: Path):
    import contextlib

    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[Populated]:
        key_path = tmp_path / "signing.pem"
        signer = Signer.from_file(key_path, create=True)
        clock = ManualClock(T0, frozen=True)
        async with SandboxWorld(
            load_policy(EXAMPLE_CONFIG), database_url=database_url, clock=clock, signer=signer
        ) as world:
            world.add_guild(copy.deepcopy(ACME))
            await world.start_bot()
            await populate(world)
            names = {n: world.guild.member(n).id for n in ("alice", "bob", "carol", "dave")}
            yield Populated(world, signer, key_path, database_url, names)
            world.sb.conformance.assert_ok()

    return run()
