"""Answer first, measured: the same bot, interactions alternating with and without it.

Each pair of flows (``/jit request``, then an Approve that completes the quorum) runs once with
``Tuning.answer_first`` on (cards and DMs follow the answer) and once with it off (they come
before it, as they once did), in the same process, world and database, so the load of a shared
machine falls on both alike: the full benchmark's figure 1 compares runs minutes apart, and on a
loaded machine their spread is larger than the difference. Then bursts of ``--burst`` flows at
once, alternating the same way. Times are the visible answer (``InteractionRecord.answered_loop``).

Usage:  python bench/answer_first.py [--n 40] [--burst 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import figures  # noqa: E402
from bench.common import Sample, pct, warden_world  # noqa: E402

MODES = {"answer first": True, "cards first": False}


def line(label: str, sample: Sample) -> str:
    s = sample.answers
    return f"{label:<40} n={len(s):<4} p50 {pct(s, 50) * 1000:8.1f} ms   p99 {pct(s, 99) * 1000:8.1f} ms"


async def measure(n: int, burst: int, rounds: int) -> dict[str, Any]:
    async with warden_world("warden-answer-first-", 2 * n + 2 * rounds * burst + 10) as (world, guild):
        actor = figures.Actor("warden", world, guild, itertools.count(1))
        await actor.mine()  # warm up
        one = {mode: (Sample(), Sample()) for mode in MODES}
        for i in range(2 * n):
            mode = list(MODES)[i % 2]
            world.bot.follow_ups.answer_first = MODES[mode]
            requested, approved = one[mode]
            await actor.approve(await actor.request(requested), approved)
        bursts = {mode: (Sample(), Sample()) for mode in MODES}
        for mode in list(MODES) * rounds if burst else ():
            world.bot.follow_ups.answer_first = MODES[mode]
            requested, approved = bursts[mode]
            cards = await asyncio.gather(*(actor.request(requested) for _ in range(burst)))
            await asyncio.gather(*(actor.approve(card, approved) for card in cards))
        ok, _ = await world.ledger_verifies()
    return {"one_at_a_time": one, f"burst_{burst}": bursts, "ledger_verifies": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="flows one at a time in each mode")
    parser.add_argument("--burst", type=int, default=50, help="flows at once (0: none)")
    parser.add_argument("--rounds", type=int, default=2, help="bursts in each mode")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.n, args.burst, args.rounds))
    for how in ("one_at_a_time", f"burst_{args.burst}"):
        for mode, (requested, approved) in result[how].items():
            if requested.answers:
                print(line(f"{how} {mode} /jit request", requested))
                print(line(f"{how} {mode} Approve", approved))
    print("ledger verifies" if result["ledger_verifies"] else "LEDGER DOES NOT VERIFY")
    return 0 if result["ledger_verifies"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
