"""Where the database connection goes: per interaction, how long each flow holds it.

Figure 2 (throughput) stays near the same rate at every concurrency. This shows why: SQLite has
one connection (one writer), so the interactions' transactions take turns on it, and the rate
cannot pass ``1 / (time the connection is held per interaction)``. Each kind of interaction runs
one at a time (``/jit request``, an Approve that completes the quorum, ``/jit mine``), then the bot
is left to finish what follows it (cards, DMs, the audit entry of the role it gave), and the
connection's checkouts, time held (SQLAlchemy pool events: checkout to checkin) and statements
are counted for that interaction and everything it set off.

Usage:  python bench/connection.py [--n 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from bench import figures  # noqa: E402
from bench.common import warden_world  # noqa: E402

KINDS = ("/jit request", "Approve", "/jit mine")
SETTLE = 0.02  # left out of the wall time


class Held:
    """Checkouts, seconds held and statements of the engine's pool, as counters."""

    def __init__(self, engine: Any) -> None:
        self.counts: Counter[str] = Counter()
        self._since: float | None = None
        sync = engine.sync_engine
        event.listen(sync.pool, "checkout", self._checkout)
        event.listen(sync.pool, "checkin", self._checkin)
        event.listen(sync, "before_cursor_execute", self._statement)

    def _checkout(self, *_: Any) -> None:
        self._since = time.perf_counter()
        self.counts["checkouts"] += 1

    def _checkin(self, *_: Any) -> None:
        if self._since is not None:
            self.counts["held_us"] += int((time.perf_counter() - self._since) * 1e6)
            self._since = None

    def _statement(self, *_: Any) -> None:
        self.counts["statements"] += 1


async def measure(n: int) -> dict[str, dict[str, float]]:
    async with warden_world("warden-connection-", n + 20) as (world, guild):
        bot = world.bot
        actor = figures.Actor("warden", world, guild, itertools.count(1))

        async def settled() -> None:
            await bot.follow_ups.idle()
            await asyncio.sleep(SETTLE)  # the gateway event of a change Warden made, on its way
            await bot.services.audit.drain()

        for _ in range(3):  # warm up
            await actor.approve(await actor.request())
            await actor.mine()
        await settled()
        assert world._engine is not None
        held = Held(world._engine)
        totals: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
        for _ in range(n):
            for kind in KINDS:
                before, started = held.counts.copy(), time.perf_counter()
                if kind == "/jit request":
                    card = await actor.request()
                elif kind == "Approve":
                    await actor.approve(card)
                else:
                    await actor.mine()
                await settled()
                totals[kind].update(held.counts - before)
                totals[kind]["wall_us"] += int((time.perf_counter() - started - SETTLE) * 1e6)
        return {
            kind: {
                "checkouts": c["checkouts"] / n,
                "statements": c["statements"] / n,
                "held_ms": c["held_us"] / n / 1000,
                "wall_ms": c["wall_us"] / n / 1000,
            }
            for kind, c in totals.items()
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=60, help="interactions of each kind")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.n))
    print(f"{'':14} {'checkouts':>9} {'statements':>10} {'held ms':>8} {'wall ms':>8}  (per interaction)")
    for kind, r in result.items():
        print(
            f"{kind:14} {r['checkouts']:9.1f} {r['statements']:10.1f} {r['held_ms']:8.1f} {r['wall_ms']:8.1f}"
        )
    flow = sum(r["held_ms"] for r in result.values()) + result["/jit mine"]["held_ms"]
    print(
        f"figure 2's mix (per 4 answers: a request, an Approve, two /jit mine) holds the connection "
        f"{flow:.1f} ms: at most {4000 / flow:.0f} answers/s however many run at once"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
