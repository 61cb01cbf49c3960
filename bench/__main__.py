"""``python -m bench``: every figure of docs/performance.md, each beside its floor in the same run.

    python -m bench                       # full sizes (a few minutes on two cores)
    python -m bench --quick               # tiny sizes: checks the machinery, no meaningful numbers
    python -m bench --only answer,expiry  # some figures
    python -m bench --out result.json --database-url postgresql+asyncpg://…/warden_bench

No Discord account or token: both bots run against the local sandbox Discord, through
discord.py's own HTTP and gateway code. Prints a table and writes a JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import itertools
import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import audit, figures, startup
from bench.common import POLICY, fresh_database, guild_spec
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine
from bot.policy import load_policy
from sandbox.harness import SandboxWorld

FIGURES = ("answer", "throughput", "expiry", "audit", "startup")


@dataclass(frozen=True)
class Sizes:
    one_at_a_time: int
    burst: int
    levels: tuple[int, ...]
    per_level: int
    expiry: int
    expiry_unlimited: int
    guilds: int
    members: int
    startup_grants: int
    audit_entries: int
    audit_reverts: int


FULL = Sizes(20, 200, (1, 2, 4, 8, 16, 32, 64), 80, 10_000, 2_000, 100, 1_000, 10_000, 10_000, 200)
QUICK = Sizes(2, 5, (1, 2), 8, 30, 30, 3, 20, 30, 200, 3)


def members_needed(s: Sizes) -> int:
    flows = sum(max(s.per_level, level * 4) // 4 for level in s.levels)
    return s.one_at_a_time + s.burst + flows + 10


async def interactive_figures(policy: Any, url: str, sizes: Sizes, which: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with SandboxWorld(policy, database_url=url) as world:
        n = members_needed(sizes)
        warden_guild = world.add_guild(guild_spec(n))
        floor_guild = world.add_guild(guild_spec(n, name="floor"))
        for name, guild in (("floor", floor_guild), ("warden", warden_guild)):
            fresh = itertools.count(1)
            actor = figures.Actor(name, world, guild, fresh)
            floor = None
            if name == "floor":
                floor = await figures.start_floor(world, guild)
            else:
                await world.start_bot(timeout=60)
            try:
                await actor.mine()  # warm up
                if "answer" in which:
                    out.setdefault("answer", {})[name] = await figures.answer_latency(
                        actor, sizes.one_at_a_time, sizes.burst
                    )
                if "throughput" in which:
                    out.setdefault("throughput", {})[name] = await figures.throughput(
                        actor, list(sizes.levels), sizes.per_level
                    )
            finally:
                if floor is not None:
                    await floor.stop()
        if world.bot is not None:
            ok, problems = await world.ledger_verifies()
            out["checks"] = {
                "ledger_verifies": ok,
                "ledger_problems": problems[:5],
                "conformance_violations": list(world.sb.conformance.violations)[:5],
            }
    return out


async def expiry_figure(policy: Any, url: str, count: int, rate_limits: bool, people: bool) -> dict[str, Any]:
    async with SandboxWorld(policy, database_url=url) as world:
        world.sb.rate_limits = rate_limits
        guild = world.add_guild(guild_spec(count + 5, holding=count))
        # The grants exist before Warden starts, as after a restart: its start-up audit comparison
        # would otherwise take the role from members holding it without a grant.
        world._engine = create_engine(url)
        await upgrade_to_head(world._engine)
        end = world.clock.now() + figures.dt.timedelta(minutes=1)
        await figures.seed_grants(world, guild, count, end)
        await world.start_bot(timeout=120)
        actor = figures.Actor("warden", world, guild, itertools.count(count))
        result = await figures.bulk_expiry(world, guild, count, actor if people else None)
        if rate_limits:
            # Each window of ``g_per`` seconds admits ``g_limit`` requests: the last of ``count``
            # removals can go out no sooner than the start of window (count - 1) // g_limit.
            g_limit, g_per = world.sb.global_rate_limit or (50, 1.0)
            minimum = (count - 1) // g_limit * g_per
            result["minimum_seconds"] = round(minimum, 2)
            result["ratio_to_minimum"] = (
                round(result["seconds_to_last_removal"] / minimum, 3) if minimum else None
            )
        else:
            result["removals_per_second"] = round(count / result["seconds_to_last_removal"], 1)
        return result


async def audit_figure(url: str, entries: int, reverts: int) -> dict[str, Any]:
    """Figure 5: audit-log entries through rules, signed ledger and summarised narratives."""
    seconds, processed, ledger, ok = await audit.throughput(url, entries, 200)
    out: dict[str, Any] = {
        "entries": entries,
        "seconds": round(seconds, 2),
        "entries_per_second": round(entries / seconds, 1),
        "ledger_entries": ledger,
        "decided_once_each": processed == entries,
        "chain_verifies": ok,
    }
    if reverts:
        lat = await audit.latency(url, reverts)
        out["first_revert_p50_ms"] = round(audit.pct(lat, 50) * 1000, 1)
        out["first_revert_p99_ms"] = round(audit.pct(lat, 99) * 1000, 1)
    return out


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def table(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    answer = result.get("answer")
    if answer:
        lines.append(
            "1. time to the visible answer (ms)        warden p50/p99        floor p50/p99    p99 ratio  goal ≤1.5"
        )
        for mode in answer["warden"]:
            for kind, w in answer["warden"][mode].items():
                f = answer["floor"][mode][kind]
                lines.append(
                    f"   {mode:<14} {kind:<13} {w['answer_p50_ms']:>9.1f} / {w['answer_p99_ms']:<9.1f}"
                    f" {f['answer_p50_ms']:>9.1f} / {f['answer_p99_ms']:<9.1f}"
                    f" {ratio(w['answer_p99_ms'], f['answer_p99_ms']):>8}   ack max {w['ack_max_ms']:.0f} ms"
                    f", answer max {w['answer_max_ms']:.0f} ms"
                    + (
                        f"; UNANSWERED warden {w['errors']}, floor {f['errors']}"
                        if w["errors"] or f["errors"]
                        else ""
                    )
                )
    tp = result.get("throughput")
    if tp:
        w, f = tp["warden"]["best_rate"], tp["floor"]["best_rate"]
        lines.append(
            f"2. throughput with answer p99 ≤ 1 s: warden {w}/s, floor {f}/s, ratio {ratio(w, f)} (goal ≥ 0.5)"
        )
        for side in ("warden", "floor"):
            steps = ", ".join(
                f"{r['concurrency']}→{r['rate']}/s p99 {r['answer_p99_ms']:.0f}ms" for r in tp[side]["levels"]
            )
            lines.append(f"   {side}: {steps}")
    pg = result.get("throughput_postgresql")
    if pg:
        w, f = pg["warden"]["best_rate"], pg["floor"]["best_rate"]
        steps = ", ".join(
            f"{r['concurrency']}→{r['rate']}/s p99 {r['answer_p99_ms']:.0f}ms" for r in pg["warden"]["levels"]
        )
        lines.append(f"   on PostgreSQL: warden {w}/s, floor {f}/s, ratio {ratio(w, f)}; warden: {steps}")
    ex = result.get("expiry")
    if ex:
        lim = ex.get("rate_limited")
        if lim:
            lines.append(
                f"4. bulk expiry, {lim['grants']} grants, rate limits on: last removal after "
                f"{lim['seconds_to_last_removal']} s; minimum {lim['minimum_seconds']} s; ratio "
                f"{lim['ratio_to_minimum']} (goal ≤ 1.1); 429s {lim['share_429'] * 100:.2f}% (goal < 1%); "
                f"left holding {lim['left_holding']}"
            )
            load = lim.get("answers_under_load")
            idle = (result.get("answer") or {}).get("floor", {}).get("one_at_a_time", {}).get("/jit mine")
            if load:
                goal = (
                    f"; idle floor p99 {idle['answer_p99_ms']} ms, ratio {ratio(load['answer_p99_ms'], idle['answer_p99_ms'])} (goal ≤ 2)"
                    if idle
                    else ""
                )
                lines.append(
                    f"3. /jit mine while it drains: p50 {load['answer_p50_ms']} ms, p99 {load['answer_p99_ms']} ms,"
                    f" n={load['n']}{goal}"
                )
        for db, row in (ex.get("unlimited") or {}).items():
            lines.append(
                f"4. bulk expiry, {row['grants']} grants, no rate limits, {db}: {row['removals_per_second']} removals/s"
            )
    for db, row in (result.get("audit") or {}).items():
        revert = (
            f"; first revert p50 {row['first_revert_p50_ms']} ms, p99 {row['first_revert_p99_ms']} ms (goal ≤ 1500)"
            if "first_revert_p99_ms" in row
            else ""
        )
        goal = " (goal ≥ 2000/s)" if db == "sqlite" else ""
        lines.append(
            f"5. audit, {row['entries']} entries, {db}: {row['entries_per_second']}/s{goal}, "
            f"{row['ledger_entries']} ledger entries, chain {'verifies' if row['chain_verifies'] else 'BROKEN'}"
            f"{revert}"
        )
    st = result.get("startup")
    if st:
        w, f = st["warden"], st["floor"]
        lines.append(
            f"6. {st['guilds']} guilds × {st['members']} members, {st['grants']} grants: start-to-ready warden "
            f"{w['ready_seconds']} s vs floor {f['ready_seconds']} s (goal ≤ floor + 2 s); memory warden "
            f"{w['rss_mb']} MB vs floor {f['rss_mb']} MB, ratio {ratio(w['rss_mb'], f['rss_mb'])} (goal ≤ 1.3)"
        )
    return lines


async def main_async(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    if args.burst:
        sizes = dataclasses.replace(sizes, burst=args.burst)
    which = set(args.only.split(",")) if args.only else set(FIGURES)
    unknown = which - set(FIGURES)
    if unknown:
        print(f"unknown figure(s) {sorted(unknown)}; choose from {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sizes": sizes.__dict__,
    }
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        policy_path = Path(tmp) / "bench.toml"
        policy_path.write_text(POLICY, encoding="utf-8")
        policy = load_policy(policy_path)
        counter = itertools.count()

        def sqlite() -> str:
            return f"sqlite+aiosqlite:///{Path(tmp) / f'bench{next(counter)}.db'}"

        print(
            f"Warden benchmark ({'quick' if args.quick else 'full'}), {result['date']}, "
            f"Python {result['machine']['python']}, {result['machine']['cpus']} CPUs",
            flush=True,
        )
        started = time.perf_counter()
        shown: set[str] = set()

        async def progress() -> None:
            """Print each figure as it completes and keep the JSON current: a long run that is
            stopped still leaves what it measured."""
            for line in table(result):
                if line not in shown:
                    print(line, flush=True)
                    shown.add(line)
            result["seconds"] = round(time.perf_counter() - started, 1)
            await asyncio.to_thread(
                Path(args.out).write_text, json.dumps(result, indent=2, default=str), "utf-8"
            )
            # Each figure as if run alone: what the earlier ones left on the heap is collected, and
            # what survives is frozen, so the collector does not walk it again during the next one
            # (10,000 members and grants of the expiry figure slowed the audit figure by a third).
            gc.collect()
            gc.freeze()

        if "audit" in which:
            # First: measured after the expiry figure's 10,000-member world it came out a quarter
            # to a third slower (1,470-1,620/s against 2,160-2,210/s alone), even with the heap
            # collected and frozen in between; the cause is not found yet (docs/performance.md).
            au = result["audit"] = {}
            au["sqlite"] = await audit_figure(sqlite(), sizes.audit_entries, sizes.audit_reverts)
            await progress()
            if args.database_url:
                async with fresh_database(args.database_url, "audit") as url:
                    au["postgresql"] = await audit_figure(url, sizes.audit_entries, 0)
                await progress()
        if which & {"answer", "throughput"}:
            result.update(await interactive_figures(policy, sqlite(), sizes, which))
            await progress()
            if "throughput" in which and args.database_url:
                # The same mix on PostgreSQL: many connections instead of SQLite's one, so what
                # bounds it there is the ledger head every decision locks (docs/performance.md).
                async with fresh_database(args.database_url, "throughput") as url:
                    pg = await interactive_figures(policy, url, sizes, {"throughput"})
                result["throughput_postgresql"] = pg["throughput"]
                await progress()
        if "expiry" in which:
            ex = result["expiry"] = {}
            ex["rate_limited"] = await expiry_figure(policy, sqlite(), sizes.expiry, True, True)
            await progress()
            ex["unlimited"] = {
                "sqlite": await expiry_figure(policy, sqlite(), sizes.expiry_unlimited, False, False)
            }
            if args.database_url:
                async with fresh_database(args.database_url, "expiry") as url:
                    ex["unlimited"]["postgresql"] = await expiry_figure(
                        policy, url, sizes.expiry_unlimited, False, False
                    )
            await progress()
        if "startup" in which:
            result["startup"] = await startup.measure(
                Path(tmp), sizes.guilds, sizes.members, sizes.startup_grants
            )
        await progress()
    checks = result.get("checks", {})
    unanswered = sum(
        kind["errors"]
        for side in (result.get("answer") or {}).values()
        for mode in side.values()
        for kind in mode.values()
    )
    checks["unanswered"] = unanswered
    print(
        f"checks: ledger {'verifies' if checks.get('ledger_verifies', True) else 'DOES NOT verify'}, "
        f"{len(checks.get('conformance_violations', []))} API conformance violations, "
        f"{unanswered} unanswered interactions; {result['seconds']} s"
    )
    print(f"wrote {args.out}")
    audit_ok = all(
        r["chain_verifies"] and r["decided_once_each"] for r in (result.get("audit") or {}).values()
    )
    ok = (
        checks.get("ledger_verifies", True)
        and not checks.get("conformance_violations")
        and not unanswered
        and audit_ok
    )
    return 0 if ok else 1


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the test suite's smoke run)")
    parser.add_argument("--only", help=f"comma-separated figures: {', '.join(FIGURES)}")
    parser.add_argument("--out", default="bench-result.json", help="where the JSON result goes")
    parser.add_argument(
        "--database-url",
        help="also measure throughput, bulk expiry and audit throughput on PostgreSQL: a database the bench may "
        "create others beside (each figure gets its own fresh one, dropped afterwards)",
    )
    parser.add_argument(
        "--burst", type=int, help="interactions at once in figure 1 (default 200; 5 with --quick)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
