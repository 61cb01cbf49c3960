"""Audit-log entries: throughput of classification + ledger, and first-revert latency.

1. throughput — ``AuditListener.decide_many`` (what the live worker and catch-up call) with the
   real classifier and default rules, the real grants table and the real signed ledger on SQLite
   (or ``--database-url``); guild facts come from a fixed in-memory guild and reverts are
   counted, not sent. Entries are a raid mix: webhooks by a non-admin (alert), roles gaining
   Administrator (block), JIT roles by hand (block), channels created (allowed). Batches of 200
   (the live worker's batch) and of 1 (an entry decided alone).
2. latency — the production bot in the sandbox (``SandboxWorld``): a JIT role given by hand,
   from the audit-log entry leaving the sandbox's gateway to the revert's REST call reaching
   the sandbox. The first unsanctioned change is reverted, no threshold.

Usage:  python bench/audit.py [--n 10000] [--reverts 200] [--database-url URL]
Goals (docs/rules.md): ≥ 2,000 entries/s on SQLite; first-revert p99 ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bot.audit.actions import RevertAction  # noqa: E402
from bot.audit.classify import Classifier  # noqa: E402
from bot.audit.defaults import effective_rules  # noqa: E402
from bot.audit.grant_ledger import SqlGrantLedger  # noqa: E402
from bot.audit.listener import AuditListener  # noqa: E402
from bot.audit.recorder import LedgerRecorder  # noqa: E402
from bot.clock import ManualClock  # noqa: E402
from bot.controls import ControlMap  # noqa: E402
from bot.db.migrate import upgrade_to_head  # noqa: E402
from bot.db.models import AuditProcessed, LedgerEntry  # noqa: E402
from bot.db.session import create_engine, create_session_factory  # noqa: E402
from bot.decisions.service import DecisionService  # noqa: E402
from bot.ledger import Signer, verify_chain  # noqa: E402
from bot.policy import parse_policy, permissions_from_names  # noqa: E402
from sandbox.harness import SandboxWorld  # noqa: E402

GUILD, ADMIN, RAIDER, JIT_ROLE, PLAIN_ROLE, CHANNEL = 1000, 501, 701, 611, 612, 3002
BASE_ID = (1772442000000 - 1420070400000) << 22
ADMINISTRATOR = str(permissions_from_names(["administrator"]).value)

POLICY = {
    "guild": {
        str(GUILD): {
            "approvals_channel": "approvals",
            "governance_channel": "governance",
            "admins": [f"user:{ADMIN}"],
        }
    },
    "scope": {
        "deploy": {
            "kind": "role",
            "role": JIT_ROLE,
            "max_duration": "8h",
            "approvers": ["sec-leads"],
            "requesters": ["engineers"],
        }
    },
}


class Facts:
    """A fixed guild: the cache a running bot would read."""

    def role_id(self, guild_id: int, ref: str | int) -> int | None:
        return ref if isinstance(ref, int) else {"sec-leads": 613, "engineers": 614}.get(ref)

    def role_permissions(self, guild_id: int, role_id: int) -> int | None:
        return 0

    def member_role_ids(self, guild_id: int, member_id: int) -> frozenset[int] | None:
        return frozenset()

    def member_permissions(self, guild_id: int, member_id: int) -> int | None:
        return 0

    def is_bot(self, guild_id: int, user_id: int) -> bool | None:
        return False

    def managed_role_id(self, guild_id: int, bot_id: int) -> int | None:
        return None

    def channel_is_private(self, guild_id: int, channel_id: int) -> bool | None:
        return False

    def name_of(self, guild_id: int, target_id: int) -> str | None:
        return "bench" if target_id == guild_id else None

    def owner_id(self, guild_id: int) -> int | None:
        return None


class CountingReverter:
    def __init__(self) -> None:
        self.count = 0

    async def perform(self, action: RevertAction, reason: str) -> None:
        self.count += 1


def entry(i: int) -> dict[str, Any]:
    """The i-th entry of the raid mix (ids increase with i)."""
    base = {"id": str(BASE_ID + ((i + 1) << 22) + i % 4096), "guild_id": str(GUILD), "user_id": str(RAIDER)}
    kind = i % 4
    if kind == 0:
        changes = [{"key": "channel_id", "new_value": str(CHANNEL)}, {"key": "type", "new_value": 1}]
        return base | {"action_type": 50, "target_id": str(10**17 + i), "changes": changes}
    if kind == 1:
        changes = [{"key": "permissions", "old_value": "0", "new_value": ADMINISTRATOR}]
        return base | {"action_type": 31, "target_id": str(PLAIN_ROLE), "changes": changes}
    if kind == 2:
        changes = [{"key": "$add", "new_value": [{"id": str(JIT_ROLE), "name": "deployers"}]}]
        return base | {"action_type": 25, "target_id": str(2 * 10**17 + i), "changes": changes}
    return base | {
        "action_type": 10,
        "target_id": str(3 * 10**17 + i),
        "changes": [{"key": "name", "new_value": "c"}],
    }


async def throughput(url: str, n: int, batch: int) -> tuple[float, int, int, bool]:
    engine = create_engine(url)
    await upgrade_to_head(engine)
    sessions = create_session_factory(engine)
    clock = ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), frozen=True)
    signer = Signer.generate()
    policy = parse_policy(POLICY)
    facts = Facts()
    reverter = CountingReverter()
    listener = AuditListener(
        classifier=Classifier(
            policy, effective_rules(policy.rules), facts, SqlGrantLedger(sessions), warden_user_id=42
        ),
        facts=facts,
        recorder=LedgerRecorder(DecisionService(signer, ControlMap.load_default(), clock)),
        reverter=reverter,
        clock=clock,
        session_factory=sessions,
    )
    payloads = [entry(i) for i in range(n)]
    started = time.perf_counter()
    for i in range(0, n, batch):
        await listener.decide_many([listener.normalise(p) for p in payloads[i : i + batch]])
    await listener.flush_bursts(force=True)
    seconds = time.perf_counter() - started
    async with sessions() as s:
        processed = int(await s.scalar(select(func.count()).select_from(AuditProcessed)) or 0)
        ok = (await verify_chain(s, signer.public_key)).ok
        entries = int(await s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
    await engine.dispose()
    return seconds, processed, entries, ok


def pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


LATENCY_POLICY = """
[guild.bench]
approvals_channel = "approvals"
governance_channel = "governance"

[scope.deploy]
kind = "role"
role = "deployers"
max_duration = "2h"
approvers = ["sec-leads"]
requesters = ["engineers"]
"""


async def latency(url: str, reverts: int) -> list[float]:
    policy = parse_policy(tomllib.loads(LATENCY_POLICY))
    spec = {
        "name": "bench",
        "roles": [{"name": "engineers"}, {"name": "sec-leads"}, {"name": "deployers"}],
        "members": [{"name": f"m{i}", "roles": ["engineers"]} for i in range(reverts)],
        "channels": [{"name": "approvals"}, {"name": "governance"}],
    }
    out: list[float] = []
    async with SandboxWorld(policy, database_url=url) as world:
        g = world.add_guild(spec)
        await world.start_bot()
        for i in range(reverts):
            member = g.member(f"m{i}")
            started = time.perf_counter()
            await world.sb.admin.add_role(g, member, "deployers")  # the entry leaves the gateway here
            # Polling is the measurement: the role goes when the revert's REST call arrives.
            while member.has_role("deployers"):  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            out.append(time.perf_counter() - started)
        await world.bot.services.audit.drain()
    return out


async def main_async(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:

        def url(name: str) -> str:
            return args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / name}"

        print(f"Warden audit benchmark: n={args.n}, reverts={args.reverts}, Python {sys.version.split()[0]}")
        failed = False
        for batch in (200, 1):
            n = args.n if batch > 1 else max(1, args.n // 10)
            seconds, processed, entries, ok = await throughput(url(f"t{batch}.db"), n, batch)
            rate = n / seconds
            print(
                f"throughput batch={batch:<4} {n:>6} entries in {seconds:7.2f} s = {rate:8.1f}/s "
                f"(goal 2000/s: {'met' if rate >= 2000 else 'NOT met'}, ratio {rate / 2000:.2f}); "
                f"{processed} decided once each, {entries} ledger entries, chain {'verifies' if ok else 'BROKEN'}"
            )
            failed |= processed != n or not ok
        if args.reverts:
            lat = await latency(url("latency.db"), args.reverts)
            p99 = pct(lat, 99)
            print(
                f"first revert: {len(lat)} reverts, p50 {pct(lat, 50) * 1000:.1f} ms, p95 {pct(lat, 95) * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms (goal 1500 ms: {'met' if p99 <= 1.5 else 'NOT met'}, ratio {p99 / 1.5:.2f})"
            )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=10_000, help="entries for the throughput run")
    parser.add_argument("--reverts", type=int, default=200, help="hand-given roles for the latency run")
    parser.add_argument("--database-url", help="a dedicated, empty database (default: temp SQLite files)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
