"""The crash campaign: `warden run` SIGKILLs itself at each kill point; it is restarted; promises hold.

For every kill point (bot/services/killpoints.py) the campaign starts a real `warden run` process
against the local sandbox Discord with ``WARDEN_KILL_AT=<point>``, drives the flow that reaches
that point (request, vote, apply, extend, revoke or expire) through discord.py's real HTTP and
gateway code, and restarts the process, as a supervisor would, the moment it dies. When every
grant has ended it checks the invariants of sandbox/invariants.py and runs `warden audit verify`.

    python -m sandbox.crash --all                       # every kill point, temp SQLite
    python -m sandbox.crash --point grant.apply.after_discord
    python -m sandbox.crash --all --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/crash
    python -m sandbox.crash --all --production-timings  # claims of 30 s, sweeps every 10 s: slow

By default the processes run with short claims and sweeps (WARDEN_TUNING), so each kill point
takes seconds rather than minutes; the promise checked is the production one either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.db.migrate import upgrade_to_head
from bot.db.models import AccessRequest, Grant, GrantStatus, NarrativeOutbox, RequestKind, RequestStatus
from bot.db.session import create_engine, create_session_factory
from bot.ledger import Signer
from bot.services.killpoints import KILL_POINTS
from sandbox.errors import SandboxError
from sandbox.harness import build_guild, campaign_policy
from sandbox.invariants import Findings, check, standing_roles
from sandbox.models import SGuild
from sandbox.server import SandboxDiscord

REPO = Path(__file__).resolve().parents[1]
TOKEN = "sandbox-crash-campaign-token-7e2a"
# Short claims and sweeps, so a killed process's claims lapse in seconds (docs/reliability.md).
QUICK = (
    "sweep_seconds=1,narrative_seconds=0.5,apply_claim_seconds=3,claim_seconds=3,"
    "stale_approved_seconds=3,card_grace_seconds=3,discord_max_wait=1"
)

# Which flow reaches each kill point.
FLOW = {
    "request.create.after_commit": "auto",
    "approval.vote.after_commit": "expire",
    "grant.apply.before_claim": "expire",
    "grant.apply.before_discord": "expire",
    "grant.apply.after_discord": "expire",
    "grant.apply.after_commit": "expire",
    "request.extend.after_commit": "extend",
    "approval.extend.after_commit": "extend",
    "grant.expire.before_discord": "expire",
    "grant.expire.after_discord": "expire",
    "grant.expire.after_commit": "expire",
    "grant.revoke.before_discord": "revoke",
    "grant.revoke.after_discord": "revoke",
    "grant.revoke.after_commit": "revoke",
}
assert set(FLOW) == set(KILL_POINTS), "every kill point needs a flow that reaches it"
# The suite's small campaign: one point in each flow (auto-approved request, apply, extend, expire, revoke).
SMALL = (
    "request.create.after_commit",
    "grant.apply.after_discord",
    "request.extend.after_commit",
    "grant.expire.before_discord",
    "grant.revoke.after_discord",
)

GUILD: dict[str, Any] = {
    "name": "crash-lab",
    "roles": [{"name": "engineers"}, {"name": "leads"}, {"name": "deployers"}],
    "members": [
        {"name": "alice", "roles": ["engineers"]},
        {"name": "bob", "roles": ["leads"]},
        {"name": "carol", "roles": ["engineers", "deployers"]},  # holds deployers standing
    ],
    "channels": [{"name": "approvals"}, {"name": "governance"}],
}


def policy(gid: int) -> str:
    return campaign_policy(
        gid,
        {"expiry_reminder": '"0s"'},
        {
            "deploy": {"role": '"deployers"', "max_duration": '"1h"'},
            "hotfix": {
                "role": '"deployers"',
                "max_duration": '"1h"',
                "auto_approve": '[{ members_of = "engineers", max_duration = "1h" }]',
            },
        },
    )


SHORT = 12  # seconds a grant that expires lasts (extended grants: SHORT + EXTRA)
EXTRA = 6


@dataclass
class Outcome:
    """One kill point's run."""

    point: str
    flow: str
    killed: int = 0  # times the process died at the point (exactly 1 when the point was reached)
    restarts: int = 0
    seconds: float = 0.0
    findings: Findings = field(default_factory=Findings)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.findings.violations

    def line(self) -> str:
        f = self.findings
        state = "ok  " if self.ok else "FAIL"
        return (
            f"{state} {self.point:<32} {self.flow:<7} killed {self.killed} restarted {self.restarts} "
            f"grants {f.grants} applied {f.applied} removed {f.removed} narratives {f.narratives} "
            f"worst late {f.worst_late.total_seconds():+.1f}s  {self.seconds:.0f}s"
        )


class Supervisor:
    """Runs `warden run`; when it dies it is started again at once (without the kill point)."""

    def __init__(self, env: dict[str, str], config: Path, workdir: Path) -> None:
        self.env, self.config, self.workdir = env, config, workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0
        self.restarts = 0
        self.unexpected: list[str] = []
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._logs: list[Path] = []

    async def _spawn(self, kill_at: str | None) -> asyncio.subprocess.Process:
        env = dict(self.env)
        if kill_at:
            env["WARDEN_KILL_AT"] = kill_at
        log = self.workdir / f"warden-{len(self._logs)}.log"
        self._logs.append(log)
        with log.open("wb") as out:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(self.config),
                cwd=self.workdir, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

    async def start(self, kill_at: str | None) -> None:
        self.proc = await self._spawn(kill_at)
        self._task = asyncio.create_task(self._watch(), name="crash-supervisor")

    async def _watch(self) -> None:
        while True:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._stopping:
                return
            if code == -signal.SIGKILL:
                self.kills += 1
            else:
                self.unexpected.append(f"warden run exited with {code} (not at a kill point)")
            self.restarts += 1
            self.proc = await self._spawn(None)

    async def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                self.unexpected.append(f"warden run stopped with {proc.returncode} after SIGTERM")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self._logs if p.exists())


class Driver:
    """Plays the people: each step is tried until its effect is seen, across crashes and restarts."""

    def __init__(self, sb: SandboxDiscord, guild: SGuild, sessions: Any) -> None:
        self.sb, self.g, self.sessions = sb, guild, sessions

    async def scalar(self, statement: Any) -> Any:
        async with self.sessions() as session:
            return await session.scalar(statement)

    async def step(
        self,
        what: str,
        act: Callable[[], Awaitable[Any]],
        done: Callable[[], Awaitable[bool]],
        timeout: float = 45.0,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await done():
                return
            with contextlib.suppress(SandboxError, TimeoutError, LookupError):
                await act()
            # the effect may follow a restart: a sweep finishes what the dead process started
            until = min(deadline, time.monotonic() + 8)
            while time.monotonic() < until:
                if await done():
                    return
                await asyncio.sleep(0.2)
        raise SandboxError(f"{what}: not done within {timeout:.0f}s")

    async def wait(self, what: str, done: Callable[[], Awaitable[bool]], timeout: float = 90.0) -> None:
        await self.step(what, _nothing, done, timeout)

    def card(self, rid: int) -> Any:
        """The card of request #rid (its title names it), once posted."""
        cards = [
            m for m in self.sb.messages(self.g.channel("approvals")) if m.components and f"#{rid}" in m.text
        ]
        if not cards:
            raise LookupError(f"no card for request #{rid} yet")
        return cards[-1]

    async def request(self, scope: str, seconds: int) -> int:
        alice = self.g.member("alice")

        async def ask() -> None:
            await self.sb.slash(self.g, alice, "jit request", scope=scope, duration=f"{seconds}s", timeout=10)

        async def asked() -> bool:
            return bool(await self.scalar(select(func.count()).select_from(AccessRequest)))

        await self.step(f"/jit request {scope}", ask, asked)
        rid = int(await self.scalar(select(func.max(AccessRequest.id))))
        return rid

    async def approve(self, rid: int) -> None:
        bob = self.g.member("bob")

        async def click() -> None:
            await self.sb.click(bob, self.card(rid), "Approve", timeout=10)

        async def approved() -> bool:
            status = await self.scalar(select(AccessRequest.status).where(AccessRequest.id == rid))
            if status not in (RequestStatus.PENDING, RequestStatus.APPROVED):
                raise SandboxError(f"request #{rid} was never approved: it is {status}")
            return status == RequestStatus.APPROVED

        await self.step(f"approve request #{rid}", click, approved)

    async def holds(self) -> bool:
        return self.g.member("alice").has_role("deployers")

    async def grant_id(self) -> int:
        return int(await self.scalar(select(func.max(Grant.id))))

    async def extend(self, grant_id: int, seconds: int) -> int:
        alice = self.g.member("alice")

        async def ask() -> None:
            await self.sb.slash(
                self.g, alice, "jit extend", grant=grant_id, duration=f"{seconds}s", timeout=10
            )

        def extension() -> Any:
            return select(AccessRequest.id).where(AccessRequest.kind == RequestKind.EXTENSION)

        async def asked() -> bool:
            return await self.scalar(extension()) is not None

        await self.step(f"/jit extend {grant_id}", ask, asked)
        rid = int(await self.scalar(extension()))
        await self.approve(rid)
        return rid

    async def revoke(self, grant_id: int) -> None:
        alice = self.g.member("alice")

        async def ask() -> None:
            await self.sb.slash(self.g, alice, "jit revoke", grant=grant_id, timeout=10)

        async def ended() -> bool:
            status = await self.scalar(select(Grant.final_status).where(Grant.id == grant_id))
            return status == GrantStatus.REVOKED

        await self.step(f"/jit revoke {grant_id}", ask, ended)

    async def all_ended(self) -> bool:
        live = await self.scalar(
            select(func.count())
            .select_from(Grant)
            .where(Grant.status.notin_([GrantStatus.EXPIRED, GrantStatus.REVOKED, GrantStatus.FAILED]))
        )
        unposted = await self.scalar(
            select(func.count()).select_from(NarrativeOutbox).where(NarrativeOutbox.posted_at.is_(None))
        )
        return live == 0 and unposted == 0 and not await self.holds()


async def _nothing() -> None:
    return None


async def drive(flow: str, d: Driver) -> None:
    if flow == "auto":
        await d.request("hotfix", SHORT)
        await d.wait("the auto-approved grant to be applied", d.holds)
    else:
        rid = await d.request("deploy", 3600 if flow == "revoke" else SHORT)
        await d.approve(rid)
        await d.wait("the grant to be applied", d.holds)
    gid = await d.grant_id()
    if flow == "extend":
        await d.extend(gid, EXTRA)
    if flow == "revoke":
        await d.revoke(gid)
    await d.wait("every grant to end and every narrative to be posted", d.all_ended)


async def run_point(point: str, database_url: str, workdir: Path, *, quick: bool = True) -> Outcome:
    """One kill point, end to end, in an existing ``workdir``; ``database_url`` names a fresh, empty database."""
    flow = FLOW[point]
    out = Outcome(point, flow)
    started = time.monotonic()
    key = workdir / "signing.pem"
    Signer.from_file(key, create=True)
    engine = create_engine(database_url)
    await upgrade_to_head(engine)  # before the first process, so the driver can read at once
    sessions = create_session_factory(engine)
    async with SandboxDiscord(token=TOKEN) as sb:
        guild = build_guild(sb, GUILD)
        standing = {guild.id: standing_roles(guild)}
        config = workdir / "config.toml"
        config.write_text(policy(guild.id), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env.update(
            PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            WARDEN_TOKEN=sb.token,
            WARDEN_DISCORD_API_URL=sb.api_url,
            WARDEN_DISCORD_GATEWAY_URL=sb.gateway_url,
            WARDEN_DATABASE_URL=database_url,
            WARDEN_SIGNING_KEY=str(key),
        )
        if quick:
            env["WARDEN_TUNING"] = QUICK
        supervisor = Supervisor(env, config, workdir)
        try:
            await supervisor.start(point)
            driver = Driver(sb, guild, sessions)
            await driver.wait(
                "warden run to connect and register /jit",
                lambda: _ready(sb),
                timeout=60,
            )
            await drive(flow, driver)
        except SandboxError as exc:
            out.problems.append(str(exc))
        finally:
            await supervisor.stop()
            out.killed, out.restarts = supervisor.kills, supervisor.restarts
            out.problems.extend(supervisor.unexpected)
        out.findings = await check(sb, [guild], sessions, standing, now=dt.datetime.now(dt.UTC))
        text = supervisor.output()
        if "Traceback" in text:
            out.problems.append(
                "a traceback in warden run's output:\n" + text[text.find("Traceback") :][:4000]
            )
        if TOKEN in text:
            out.problems.append("the bot token appeared in warden run's output")
    await engine.dispose()
    if out.killed != 1:
        out.problems.append(f"the process died at the kill point {out.killed} times (expected once)")
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "audit", "verify", cwd=workdir, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    report, _ = await asyncio.wait_for(verify.communicate(), 120)
    if verify.returncode != 0:
        out.problems.append("warden audit verify failed:\n" + report.decode(errors="replace")[-2000:])
    out.seconds = time.monotonic() - started
    return out


async def _ready(sb: SandboxDiscord) -> bool:
    connected = any(s.conn is not None for s in sb.gateway.sessions.values())
    return connected and any(c["name"] == "jit" for c in sb.commands())


async def campaign(
    points: list[str], database_url: Callable[[Path], Awaitable[str]], root: Path, *, quick: bool = True
) -> list[Outcome]:
    results = []
    for i, point in enumerate(points):
        workdir = root / f"{i:02d}-{point}"
        workdir.mkdir(parents=True, exist_ok=True)
        result = await run_point(point, await database_url(workdir), workdir, quick=quick)
        print(result.line(), flush=True)
        for problem in [*result.problems, *result.findings.violations]:
            print("     " + problem.replace("\n", "\n     "), flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.crash", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every kill point")
    which.add_argument("--small", action="store_true", help="the suite's five points")
    which.add_argument("--point", action="append", choices=KILL_POINTS, help="one kill point (repeatable)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL; each point gets its own database, created and dropped (default: SQLite)",
    )
    parser.add_argument("--production-timings", action="store_true", help="production claims and sweeps")
    args = parser.parse_args(argv)
    points = list(KILL_POINTS) if args.all else list(SMALL) if args.small else args.point
    return asyncio.run(_main(points, args.database_url, quick=not args.production_timings))


async def _main(points: list[str], server: str | None, *, quick: bool) -> int:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    created: list[str] = []

    async def database(workdir: Path) -> str:
        if server is None:
            return f"sqlite+aiosqlite:///{workdir / 'warden.db'}"
        name = f"warden_crash_{os.getpid()}_{len(created)}"
        admin = create_async_engine(make_url(server), isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        created.append(name)
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="warden-crash-") as root:
        try:
            results = await campaign(points, database, Path(root), quick=quick)
        finally:
            if server is not None and created:
                admin = create_async_engine(make_url(server), isolation_level="AUTOCOMMIT")
                async with admin.connect() as conn:
                    for name in created:
                        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await admin.dispose()
    failed = [r for r in results if not r.ok]
    worst = max((r.findings.worst_late for r in results), default=dt.timedelta(0))
    print(
        f"crash campaign: {len(results)} kill points, {sum(r.killed for r in results)} kills, "
        f"{sum(r.restarts for r in results)} restarts, "
        f"{sum(len(r.findings.violations) for r in results)} invariant violations, "
        f"{len(failed)} failed; worst removal {worst.total_seconds():+.1f}s after the approved end; "
        f"{time.monotonic() - started:.0f}s",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
