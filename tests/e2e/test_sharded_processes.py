"""Two `warden run` processes on different gateway shards, one PostgreSQL database, several guilds.

Each process hears only its shards' guilds (Discord's sharding, served by the sandbox) and answers
their interactions; the sweeps of both claim rows in the shared database. Checked: every request is
answered and approved, each grant is applied once and removed once (the sandbox's request and audit
logs), and after one process is SIGKILLed the other removes that process's guilds' grants within
the sweep interval and posts their narratives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.migrate import schema_is_current, upgrade_to_head
from bot.db.models import Grant, GrantStatus, NarrativeOutbox
from bot.db.session import create_engine
from bot.ledger import Signer
from bot.wiring import Tuning
from sandbox import SandboxDiscord
from sandbox.gateway import shard_of
from sandbox.harness import build_guild
from sandbox.models import SGuild
from tests.helpers import PG_SKIP_REASON, PG_URL, REPO, create_pg_database, drop_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)]

TOKEN = "sandbox-shard-secret-token-4b1d"
SHARDS = 2
PER_SHARD = 2  # guilds on each shard
SLACK = 4.0  # seconds on top of the sweep interval: a loaded CI machine, REST round trips

GUILD: dict[str, Any] = {
    "roles": [{"name": "engineers"}, {"name": "leads"}, {"name": "deployers"}],
    "members": [{"name": "alice", "roles": ["engineers"]}, {"name": "bob", "roles": ["leads"]}],
    "channels": [{"name": "approvals"}, {"name": "governance"}],
}


def policy_text(guilds: list[SGuild]) -> str:
    out = []
    for i, g in enumerate(guilds):
        out.append(
            f"""
[guild.{g.id}]
approvals_channel = "approvals"
governance_channel = "governance"
request_cooldown = "0s"
expiry_reminder = "0s"

[scope.deploy-{i}]
guild = "{g.id}"
kind = "role"
role = "deployers"
max_duration = "1h"
approvers = ["leads"]
requesters = ["engineers"]
reason_required = false
"""
        )
    return "".join(out)


def guilds_on_every_shard(sb: SandboxDiscord, per_shard: int = PER_SHARD) -> list[SGuild]:
    by_shard: dict[int, list[SGuild]] = {s: [] for s in range(SHARDS)}
    n = 0
    while min(len(v) for v in by_shard.values()) < per_shard:
        sb.snowflake._last += 1 << 22  # the next id is a millisecond later: the next shard
        g = build_guild(sb, {"name": f"team-{n}", **GUILD})
        by_shard[shard_of(g.id, SHARDS)].append(g)
        n += 1
    return [g for v in by_shard.values() for g in v[:per_shard]]


def role_calls(sb: SandboxDiscord, g: SGuild, method: str) -> int:
    alice, role = g.member("alice"), g.role("deployers")
    path = f"/guilds/{g.id}/members/{alice.id}/roles/{role.id}"
    return sum(1 for r in sb.request_log if r.method == method and r.path == path and r.status < 300)


def audit_count(sb: SandboxDiscord, g: SGuild, what: str) -> int:
    return sum(
        1
        for e in sb.audit_log(g)
        if e["action_type"] == 25
        and what in (e.get("reason") or "")
        and e["target_id"] == str(g.member("alice").id)
    )


async def until(predicate: Any, timeout: float, what: str) -> float:
    """Poll until ``predicate()``; returns the wall-clock time it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.time()


async def request_and_approve(sb: SandboxDiscord, g: SGuild, scope: str, duration: str) -> None:
    alice, bob = g.member("alice"), g.member("bob")
    before = len(sb.messages(g.channel("approvals")))
    reply = await sb.slash(g, alice, "jit request", scope=scope, duration=duration, timeout=15)
    assert "waiting for approval" in reply.text, reply.text
    await until(lambda: len(sb.messages(g.channel("approvals"))) > before, 15, f"the card in {g.name}")
    card = sb.messages(g.channel("approvals"))[-1]
    out = await sb.click(bob, card, "Approve", timeout=15)
    assert "Traceback" not in out.text
    await until(lambda: alice.has_role("deployers"), 15, f"the grant in {g.name}")


async def active_grants(url: str) -> dict[int, int]:
    """guild id → id of its active grant."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(Grant.guild_id, Grant.id).where(Grant.status == GrantStatus.ACTIVE))
            ).all()
    finally:
        await engine.dispose()
    return {gid: grant_id for gid, grant_id in rows}


async def expiries(url: str) -> dict[int, dt.datetime]:
    """guild id → expiry of its newest grant."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Grant.guild_id, Grant.expires_at).order_by(Grant.id))).all()
    finally:
        await engine.dispose()
    return {gid: when for gid, when in rows}


async def unposted(url: str) -> bool:
    """True when no narrative waits in the outbox."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            waiting = await conn.scalar(
                select(func.count()).select_from(NarrativeOutbox).where(NarrativeOutbox.posted_at.is_(None))
            )
    finally:
        await engine.dispose()
    return waiting == 0


async def until_async(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url, name = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


async def test_two_sharded_processes_share_one_database(tmp_path: Path, pg_url: str) -> None:
    key = tmp_path / "signing.pem"
    Signer.from_file(key, create=True)  # one signing key, shared by every process
    async with SandboxDiscord(token=TOKEN) as sb:
        guilds = guilds_on_every_shard(sb)
        shard = {g.id: shard_of(g.id, SHARDS) for g in guilds}
        config = tmp_path / "config.toml"
        config.write_text(policy_text(guilds), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env.update(
            PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            WARDEN_TOKEN=sb.token,
            WARDEN_DISCORD_API_URL=sb.api_url,
            WARDEN_DISCORD_GATEWAY_URL=sb.gateway_url,
            WARDEN_DATABASE_URL=pg_url,
            WARDEN_SIGNING_KEY=str(key),
        )
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(config),
                "--shards",
                str(s),
                "--shard-count",
                str(SHARDS),
                cwd=tmp_path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for s in range(SHARDS)
        ]
        outputs: list[str] = []
        try:
            # Both processes started at once (one migrates, the other waits) and identified their shard.
            await until(
                lambda: (
                    sorted(s.shard for s in sb.gateway.sessions.values() if s.conn is not None)
                    == [(i, SHARDS) for i in range(SHARDS)]
                ),
                40,
                "both shards to connect",
            )
            await until(lambda: any(c["name"] == "jit" for c in sb.commands()), 20, "/jit")
            await asyncio.sleep(1)  # the start-up sweep and the scheduler

            # 1. Every flow in every guild: request, approve, apply, then expire or (one guild per
            # shard) revoke; each interaction answered by the process on the guild's shard.
            revoking = {g.id for g in guilds[::PER_SHARD]}
            assert {shard[gid] for gid in revoking} == set(range(SHARDS))
            await asyncio.gather(
                *(
                    request_and_approve(sb, g, f"deploy-{i}", "1h" if g.id in revoking else "4s")
                    for i, g in enumerate(guilds)
                )
            )
            active = await active_grants(pg_url)
            for g in guilds:
                if g.id in revoking:
                    out = await sb.slash(g, g.member("alice"), "jit revoke", grant=active[g.id], timeout=15)
                    assert "is revoked" in out.text, out.text
            await until(
                lambda: not any(g.member("alice").has_role("deployers") for g in guilds),
                4 + Tuning.sweep_seconds + SLACK,
                "the first grants to expire",
            )

            # 2. Grants again; then one process dies and the other removes its guilds' grants.
            await asyncio.gather(
                *(request_and_approve(sb, g, f"deploy-{i}", "8s") for i, g in enumerate(guilds))
            )
            # (once the narratives so far are posted: an outbox row claimed by the dead process would
            # wait out its claim, NarrativePoster.CLAIM_SECONDS, before the survivor may post it)
            await until_async(lambda: unposted(pg_url), 15, "the narratives so far to be posted")
            procs[0].send_signal(signal.SIGKILL)
            await procs[0].wait()
            ends = await expiries(pg_url)
            assert time.time() < min(ends.values()).timestamp(), "killed too late: the grants had expired"
            for g in guilds:
                removed_at = await until(
                    lambda g=g: not g.member("alice").has_role("deployers"),
                    8 + Tuning.sweep_seconds + SLACK + 2,
                    f"the grant in {g.name} (shard {shard[g.id]}) to be removed",
                )
                late = removed_at - ends[g.id].timestamp()
                assert late <= Tuning.sweep_seconds + SLACK, f"{g.name}: removed {late:.1f}s after expiry"

            # Each grant was applied once and removed once, in every guild.
            for g in guilds:
                assert role_calls(sb, g, "PUT") == 2 and role_calls(sb, g, "DELETE") == 2, g.name
                assert audit_count(sb, g, "applied") == 2, g.name
                ended = {"expired": 1, "revoked": 1} if g.id in revoking else {"expired": 2, "revoked": 0}
                assert {k: audit_count(sb, g, k) for k in ended} == ended, g.name

            # The dead process's guilds still get their narratives: the survivor posts them by channel id.
            for g in guilds:
                await until(
                    lambda g=g: (
                        sum("Access expired" in m.text for m in sb.messages(g.channel("governance")))
                        == (1 if g.id in revoking else 2)
                    ),
                    15,
                    f"the expiry narratives in {g.name} (shard {shard[g.id]})",
                )
                # and the approval card says so, re-rendered by whichever process ended the grant
                await until(
                    lambda g=g: "access removed" in sb.messages(g.channel("approvals"))[-1].text,
                    10,
                    f"the card in {g.name} to show the grant ended",
                )
            assert sb.conformance.violations == []
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                try:
                    out, _ = await asyncio.wait_for(proc.communicate(), 15)
                except TimeoutError:
                    proc.kill()
                    out, _ = await proc.communicate()
                outputs.append(out.decode(errors="replace"))
    assert procs[1].returncode == 0, outputs[1][-3000:]
    for text in outputs:
        assert TOKEN not in text
        assert "Traceback" not in text, text[text.find("Traceback") :][:12000]
    # Both processes appended to one signed ledger; it verifies as one chain.
    audit = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "audit",
        "verify",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    report, _ = await asyncio.wait_for(audit.communicate(), 60)
    assert audit.returncode == 0, report.decode(errors="replace")


async def test_processes_starting_together_migrate_once(pg_url: str) -> None:
    """Every `warden run` migrates at start; on one fresh database they must not trip over each other."""
    engines = [create_engine(pg_url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade_to_head(e) for e in engines))
        assert all([await schema_is_current(e) for e in engines])
    finally:
        for e in engines:
            await e.dispose()
