"""Slash-command interactions per second: the real Warden bot vs. a plain discord.py floor.

Both halves run in one process against the same local sandbox Discord (``sandbox``), through
discord.py's own HTTP and gateway code, with the same number of interactions in flight:

1. floor  — a plain ``discord.Client`` + ``CommandTree`` answering ``/ping`` with a message
   (interaction callback type 4). This is what the sandbox + discord.py cost on this machine.
2. warden — the production ``WardenBot`` (database, ledger signing, narratives) handling a mix of
   ``/jit mine`` and ``/jit request`` + Approve on a quorum-of-one scope; afterwards virtual time
   jumps past the grants' end and the expiry sweep removes every granted role.

Usage:  python bench/interactions.py [--n 2000] [--concurrency 50] [--database-url URL]
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import discord  # noqa: E402
from discord import app_commands  # noqa: E402

from bot.policy import load_policy  # noqa: E402
from sandbox import SandboxDiscord  # noqa: E402
from sandbox.harness import SandboxWorld  # noqa: E402

POLICY = """
[guild.bench]
approvals_channel = "approvals"
governance_channel = "governance"
pending_ttl = "4h"
expiry_reminder = "0s"
max_pending_per_member = 25
request_cooldown = "0s"

[scope.deploy]
description = "Deploy (quorum of one)"
kind = "role"
role = "deployers"
default_duration = "1h"
max_duration = "2h"
approvers = ["sec-leads"]
approvals_required = 1
requesters = ["engineers"]
reason_required = true
"""


def guild_spec(members: int) -> dict[str, Any]:
    return {
        "name": "bench",
        "roles": [
            {"name": "engineers"},
            {"name": "sec-leads"},
            {"name": "deployers", "permissions": ["send_messages", "view_channel"]},
        ],
        "members": [
            {"name": "lead", "roles": ["sec-leads"]},
            *({"name": f"m{i}", "roles": ["engineers"]} for i in range(members)),
        ],
        "channels": [{"name": "approvals"}, {"name": "governance"}],
    }


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def add(self, kind: str, seconds: float) -> None:
        self.latencies.append(seconds)
        self.by_kind.setdefault(kind, []).append(seconds)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def line(run: Run, what: str) -> str:
    return (
        f"{run.name:<7} {what:<38} {run.count:>6} interactions in {run.seconds:7.2f} s = "
        f"{run.rate:8.1f}/s   p50 {pct(run.latencies, 50) * 1000:7.1f} ms   "
        f"p95 {pct(run.latencies, 95) * 1000:7.1f} ms"
    )


async def drive(
    run: Run, jobs: list[Callable[[Run], Awaitable[None]]], concurrency: int, progress: bool
) -> None:
    """Run every job with at most ``concurrency`` in flight; wall time into ``run.seconds``."""
    queue: asyncio.Queue[Callable[[Run], Awaitable[None]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await job(run)
            except Exception as exc:  # count it, keep going: a bench reports, it does not stop
                run.errors.append(f"{type(exc).__name__}: {exc}")
            if progress and run.count and run.count % 500 == 0:
                print(f"  … {run.name}: {run.count}", file=sys.stderr)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - start


async def timed(run: Run, kind: str, action: Awaitable[Any]) -> Any:
    t0 = time.perf_counter()
    out = await action
    run.add(kind, time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- floor


class FloorBot:
    """The least a discord.py bot does per interaction: one command, one type-4 answer."""

    def __init__(self, sb: SandboxDiscord) -> None:
        self.sb = sb
        intents = discord.Intents.default()
        intents.members = True
        self.client = discord.Client(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self.client)
        self._task: asyncio.Task[None] | None = None

        @self.tree.command(name="ping", description="Answer at once")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong", ephemeral=True)

        async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
            return None

        self.client.before_identify_hook = no_identify_delay  # type: ignore[method-assign]

    async def start(self) -> None:
        self.sb.point_discord_here()
        self.sb.gateway.ready.clear()
        self._task = asyncio.create_task(self.client.start(self.sb.token))
        await asyncio.wait_for(self.client.wait_until_ready(), 20)
        await self.tree.sync()

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)


async def bench_floor(world: SandboxWorld, n: int, concurrency: int, progress: bool) -> Run:
    sb, guild = world.sb, world.guild
    members = [guild.member(f"m{i}") for i in range(n)]
    floor = FloorBot(sb)
    await floor.start()
    try:
        for m in members[:20]:  # warm up
            await sb.slash(guild, m, "ping")
        run = Run("floor")

        def job(i: int) -> Callable[[Run], Awaitable[None]]:
            async def go(run: Run) -> None:
                out = await timed(run, "/ping", sb.slash(guild, members[i], "ping", timeout=30))
                if out.response_type != 4:
                    raise RuntimeError(f"/ping answered with type {out.response_type}")

            return go

        await drive(run, [job(i) for i in range(n)], concurrency, progress)
        return run
    finally:
        await floor.stop()


# ----------------------------------------------------------------------------- warden


async def bench_warden(world: SandboxWorld, n: int, concurrency: int, progress: bool) -> tuple[Run, str]:
    sb, guild = world.sb, world.guild
    await world.start_bot(timeout=30)
    approvals = guild.channel("approvals")
    lead = guild.member("lead")
    # Every second job is a request + Approve (two interactions), the others /jit mine:
    # half the interactions are /jit mine, a quarter requests, a quarter approvals.
    flows = n // 4
    mines = n - 2 * flows
    for i in range(5):  # warm up (/jit mine only: leaves no state)
        await sb.slash(guild, guild.member(f"m{n - 1 - i}"), "jit mine")
    run = Run("warden")

    def mine(i: int) -> Callable[[Run], Awaitable[None]]:
        async def go(run: Run) -> None:
            await timed(run, "/jit mine", sb.slash(guild, guild.member(f"m{i % n}"), "jit mine", timeout=30))

        return go

    def request_and_approve(i: int) -> Callable[[Run], Awaitable[None]]:
        async def go(run: Run) -> None:
            member = guild.member(f"m{i}")
            out = await timed(
                run,
                "/jit request",
                sb.slash(
                    guild, member, "jit request", scope="deploy", duration="1h", reason="bench", timeout=30
                ),
            )
            text = out.text
            if "Request #" not in text:
                raise RuntimeError(f"/jit request was not accepted: {text[:200]!r}")
            number = text.split("Request #", 1)[1].split(" ", 1)[0]
            card = await sb.wait_for_message(approvals, f"Access request #{number} ", timeout=30)
            await timed(run, "Approve", sb.click(lead, card, "Approve", timeout=30))

        return go

    jobs: list[Callable[[Run], Awaitable[None]]] = []
    for k in range(max(flows, mines)):
        if k < flows:
            jobs.append(request_and_approve(k))
        if k < mines:
            jobs.append(mine(k))
    await drive(run, jobs, concurrency, progress)

    granted = sum(1 for i in range(flows) if guild.member(f"m{i}").has_role("deployers"))
    # Grants end at expiry: jump past it and sweep as the scheduler would (each sweep takes a batch).
    t0 = time.perf_counter()
    world.clock.advance(dt.timedelta(hours=1, minutes=1))
    sweeps = 0
    while sweeps < 100:
        report = await world.run_due()
        sweeps += 1
        if not report.expired and not report.still_due:
            break
    still = sum(1 for i in range(flows) if guild.member(f"m{i}").has_role("deployers"))
    expiry = (
        f"expiry: {granted} of {flows} grants applied; after +1h01m {sweeps} sweep(s) removed "
        f"{granted - still} in {time.perf_counter() - t0:.2f} s ({still} left)"
    )
    return run, expiry


# ----------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        policy_path = Path(tmp) / "bench.toml"
        policy_path.write_text(POLICY, encoding="utf-8")
        policy = load_policy(policy_path)
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        backend = url.split(":", 1)[0]
        print(
            f"Warden interaction benchmark: n={args.n} per side, {args.concurrency} in flight, "
            f"database {backend}{'' if args.database_url else ' (temp file)'}, Python {sys.version.split()[0]}"
        )
        async with SandboxWorld(policy, database_url=url) as world:
            world.add_guild(guild_spec(args.n))
            floor = await bench_floor(world, args.n, args.concurrency, args.progress)
            warden, expiry = await bench_warden(world, args.n, args.concurrency, args.progress)
            ok, problems = await world.ledger_verifies()
            violations = list(world.sb.conformance.violations)

        print(line(floor, "discord.py /ping → type 4"))
        print(line(warden, "/jit mine · /jit request · Approve"))
        for kind, values in warden.by_kind.items():
            print(
                f"          {kind:<14} {len(values):>6}   p50 {pct(values, 50) * 1000:7.1f} ms   "
                f"p95 {pct(values, 95) * 1000:7.1f} ms"
            )
        print(f"        {expiry}")
        ratio = warden.rate / floor.rate if floor.rate else float("nan")
        print(
            f"ratio warden/floor: {ratio:.3f} (throughput; p50 latency x"
            f"{pct(warden.latencies, 50) / pct(floor.latencies, 50):.1f})"
        )
        errors = floor.errors + warden.errors
        print(
            f"checks: {len(errors)} errors, {len(violations)} API conformance violations, "
            f"ledger {'verifies' if ok else 'DOES NOT verify'}"
        )
        for message in (errors + violations + problems)[:10]:
            print(f"  - {message}")
        return 0 if not errors and not violations and ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000, help="interactions per side (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="interactions in flight (default 50)")
    parser.add_argument(
        "--database-url", help="Warden's database (default: a temp SQLite file), e.g. postgresql+asyncpg://…"
    )
    parser.add_argument("--progress", action="store_true", help="print progress to stderr")
    args = parser.parse_args(argv)
    if args.n < 4 or args.concurrency < 1:
        parser.error("--n must be at least 4 and --concurrency at least 1")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
