"""The figures of docs/performance.md, each measured for Warden and for the floor in one run."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.common import FloorBot, Sample, active_grant, insert_grants, pct, run_all
from sandbox.interactions import InteractionOutcome
from sandbox.models import SGuild, SMessage

TIMEOUT = 60.0


class CardIndex:
    """Approval cards by request number, indexed once as they are posted: with 200 members waiting
    for their cards, scanning the whole channel for each would cost the bench more than the bots."""

    def __init__(self, sb: Any, channel: Any) -> None:
        self._sb, self._cid = sb, channel.id
        self._seen = 0
        self._cards: dict[str, SMessage] = {}

    def _scan(self) -> None:
        posted = self._sb.channel_messages.get(self._cid, [])
        for msg in posted[self._seen :]:
            text = msg.text
            if "Access request #" in text:
                self._cards.setdefault(text.split("Access request #", 1)[1].split(" ", 1)[0], msg)
        self._seen = len(posted)

    async def card(self, number: str, timeout: float) -> SMessage:
        deadline = time.monotonic() + timeout
        while True:
            self._scan()
            if number in self._cards:
                return self._cards[number]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no approval card for request #{number} within {timeout} s")
            await self._sb.message_activity(0.5)


@dataclass
class Actor:
    """One bot under test, seen from the members' side: the same three actions for both bots."""

    name: str
    world: Any  # SandboxWorld
    guild: SGuild
    _fresh: itertools.count[int]
    _cards: CardIndex | None = None

    def member(self) -> Any:
        """A member who has asked for nothing yet (each request needs one: one pending per scope)."""
        return self.guild.member(f"m{next(self._fresh)}")

    async def request(self, sample: Sample | None = None) -> SMessage:
        out = await self.world.sb.slash(
            self.guild,
            self.member(),
            "jit request",
            scope="deploy",
            duration="1h",
            reason="bench",
            timeout=TIMEOUT,
        )
        if sample is not None:
            sample.add(out)
        text = out.text
        if "Request #" not in text:
            raise RuntimeError(f"{self.name}: /jit request was not accepted: {text[:200]!r}")
        number = text.split("Request #", 1)[1].split(" ", 1)[0]
        if self._cards is None:
            self._cards = CardIndex(self.world.sb, self.guild.channel("approvals"))
        return await self._cards.card(number, TIMEOUT)

    async def approve(self, card: SMessage, sample: Sample | None = None) -> InteractionOutcome:
        out = await self.world.sb.click(self.guild.member("lead"), card, "Approve", timeout=TIMEOUT)
        if sample is not None:
            sample.add(out)
        return out

    async def mine(self, sample: Sample | None = None) -> InteractionOutcome:
        out = await self.world.sb.slash(self.guild, self.guild.member("m0"), "jit mine", timeout=TIMEOUT)
        if sample is not None:
            sample.add(out)
        return out


# ----------------------------------------------------------------------------- 1. answer latency


async def _counted(sample: Sample, action: Awaitable[Any]) -> Any:
    """Run one interaction; a failure is counted in the sample (a bench reports, it does not stop)."""
    try:
        return await action
    except Exception as exc:
        sample.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        return None


async def answer_latency(actor: Actor, one_at_a_time: int, burst: int) -> dict[str, Any]:
    """p50/p99 of the visible answer for each kind, one at a time and ``burst`` at once."""
    result: dict[str, Any] = {}
    # One at a time.
    req, app, mine = Sample(), Sample(), Sample()
    for _ in range(one_at_a_time):
        card = await actor.request(req)
        await actor.approve(card, app)
        await actor.mine(mine)
    result["one_at_a_time"] = {
        "/jit request": req.summary(),
        "Approve": app.summary(),
        "/jit mine": mine.summary(),
    }
    # A burst: every request at once, then every Approve at once, then every /jit mine at once.
    req, app, mine = Sample(), Sample(), Sample()
    cards = await asyncio.gather(*(_counted(req, actor.request(req)) for _ in range(burst)))
    await asyncio.gather(*(_counted(app, actor.approve(card, app)) for card in cards if card is not None))
    await asyncio.gather(*(_counted(mine, actor.mine(mine)) for _ in range(burst)))
    result[f"burst_{burst}"] = {
        "/jit request": req.summary(),
        "Approve": app.summary(),
        "/jit mine": mine.summary(),
    }
    return result


# ----------------------------------------------------------------------------- 2. throughput


async def throughput(
    actor: Actor, levels: list[int], per_level: int, p99_limit: float = 1.0
) -> dict[str, Any]:
    """Mixed interactions (½ /jit mine, ¼ /jit request, ¼ Approve) at rising concurrency; the best
    rate whose answer p99 stays within ``p99_limit`` seconds."""
    rows = []
    best = 0.0
    for level in levels:
        sample = Sample()
        n = max(per_level, level * 4)

        def flow(sample: Sample = sample) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                card = await actor.request(sample)
                await actor.approve(card, sample)

            return go

        def mine(sample: Sample = sample) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                await actor.mine(sample)

            return go

        jobs = [job for _ in range(n // 4) for job in (flow(), mine(), mine())]
        seconds = await run_all(jobs, level)
        rate = len(sample.answers) / seconds
        p99 = pct(sample.answers, 99)
        rows.append({"concurrency": level, "rate": round(rate, 1), "answer_p99_ms": round(p99 * 1000, 1)})
        if p99 <= p99_limit:
            best = max(best, rate)
        else:
            break
    return {"levels": rows, "best_rate": round(best, 1)}


# ----------------------------------------------------------------------------- 3 + 4. bulk expiry


async def seed_grants(world: Any, guild: SGuild, count: int, expires_at: dt.datetime) -> None:
    """``count`` active grants of the deploy role for m0.., as if each had been approved and applied
    (the members already hold the role in the sandbox: see ``guild_spec(holding=…)``)."""
    now = world.clock.now()
    role_id = guild.role("deployers").id
    rows = [
        active_grant(
            guild_id=guild.id,
            scope_id="deploy",
            subject_id=guild.member(f"m{i}").id,
            role_id=role_id,
            now=now,
            expires_at=expires_at,
            duration_seconds=3600,
        )
        for i in range(count)
    ]
    await insert_grants(world._engine, rows)


async def bulk_expiry(world: Any, guild: SGuild, count: int, interactive: Actor | None) -> dict[str, Any]:
    """Every seeded grant ends at once; sweeps run as the scheduler runs them while, optionally, people
    keep asking (their answer latency under background load). Time until the last role is removed:
    what comes after (the holders' DMs, the narratives) is background work and is not timed."""
    holders = [guild.member(f"m{i}") for i in range(count)]
    requests_before = len(world.sb.request_log)
    world.clock.advance(dt.timedelta(minutes=2))
    started = time.perf_counter()
    under_load = Sample()
    done = asyncio.Event()

    async def people() -> None:
        while not done.is_set():
            await interactive.mine(under_load)  # type: ignore[union-attr]
            await asyncio.sleep(0.05)

    asker = asyncio.create_task(people()) if interactive is not None else None
    sweep = asyncio.create_task(world.run_due())
    holding = holders
    # The bench shares the event loop with Warden: poll only who still holds the role, so watching
    # 10,000 members does not itself slow what is measured.
    while holding := [m for m in holding if m.has_role("deployers")]:
        if sweep.done():  # as the scheduler would: the next sweep
            sweep.result()
            sweep = asyncio.create_task(world.run_due())
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    log = list(world.sb.request_log)[requests_before:]
    done.set()
    if asker is not None:
        await asker
    world.sb.rate_limits = False  # let the untimed rest (DMs, narratives) finish quickly
    await sweep
    rest = [r for r in log if not (r.template or "").startswith(("/interactions/", "/webhooks/"))]
    limited = sum(1 for r in rest if r.status == 429)
    out: dict[str, Any] = {
        "grants": count,
        "seconds_to_last_removal": round(seconds, 2),
        "rest_requests": len(rest),
        "answered_429": limited,
        "share_429": round(limited / len(rest), 4) if rest else 0.0,
        "left_holding": sum(1 for m in holders if m.has_role("deployers")),
    }
    if interactive is not None:
        out["answers_under_load"] = under_load.summary()
    return out


async def start_floor(world: Any, guild: SGuild) -> FloorBot:
    floor = FloorBot(world.sb, guild)
    await floor.start()
    return floor
