"""The soak: a virtual day of mixed traffic against the real bot in the sandbox, with faults.

Requests, votes (approve and deny), extensions, revokes and restarts arrive at random (seeded);
Discord answers ``--fault-rate`` of the bot's mutations with a 5xx or a 429; the gateway drops now
and then; the database goes away once for a while. Virtual time moves in steps of the production
sweep interval, each followed by the sweep, so a day takes minutes. At the end every grant is let
run out and the invariants of sandbox/invariants.py are checked, with the ledger's signatures.

    python -m sandbox.soak --hours 24                   # temp SQLite; prints the counts
    python -m sandbox.soak --hours 24 --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/soak
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.db.models import AccessRequest, Grant, GrantStatus, NarrativeOutbox, RequestStatus
from bot.policy import load_policy
from bot.wiring import Tuning
from sandbox.errors import SandboxError
from sandbox.harness import SandboxWorld, campaign_policy, sandbox_tuning
from sandbox.invariants import Findings, check, standing_roles

STEP = dt.timedelta(seconds=Tuning.sweep_seconds)  # the production sweep interval
START = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)

GUILD: dict[str, Any] = {
    "name": "soak",
    "roles": [
        {"name": "engineers"},
        {"name": "on-call"},
        {"name": "leads"},
        {"name": "deployers"},
        {"name": "db-admins"},
    ],
    "members": [
        {"name": "alice", "roles": ["engineers"]},
        {"name": "dave", "roles": ["engineers"]},
        {"name": "erin", "roles": ["engineers"]},
        {"name": "frank", "roles": ["engineers", "on-call"]},
        {"name": "bob", "roles": ["leads"]},
        {"name": "carol", "roles": ["leads"]},
        {"name": "heidi", "roles": ["leads", "engineers"]},
        {"name": "gina", "roles": ["engineers", "deployers"]},  # deployers standing: never taken away
    ],
    "channels": [{"name": "approvals"}, {"name": "governance"}],
}
REQUESTERS = ("alice", "dave", "erin", "frank", "heidi")
APPROVERS = ("bob", "carol", "heidi")


def policy(gid: str) -> str:
    return campaign_policy(
        gid,
        {"expiry_reminder": '"10m"', "pending_ttl": '"2h"'},
        {
            "deploy": {
                "role": '"deployers"',
                "max_duration": '"4h"',
                "auto_approve": '[{ members_of = "on-call", max_duration = "1h" }]',
            },
            "db": {
                "role": '"db-admins"',
                "max_duration": '"2h"',
                "approvals_required": "2",
                "deny_ends_request": "true",
            },
        },
    )


DURATIONS = {"deploy": ("15m", "30m", "1h", "2h"), "db": ("15m", "30m", "1h")}


@dataclass
class SoakReport:
    hours: float
    seed: int
    fault_rate: float
    operations: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # how interactions were answered
    mutations: int = 0  # bot mutations Discord could have failed
    faults: int = 0  # of which failed (5xx or 429)
    sweeps: int = 0
    tracebacks: int = 0  # log records with a traceback (none expected)
    traceback_samples: list[str] = field(default_factory=list)
    ledger_ok: bool = False
    ledger_problems: list[str] = field(default_factory=list)
    conformance: list[str] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    wall_seconds: float = 0.0

    @property
    def violations(self) -> list[str]:
        out = list(self.findings.violations)
        if not self.ledger_ok:
            out.append("the ledger does not verify: " + "; ".join(self.ledger_problems[:3]))
        out += [f"sandbox conformance: {c}" for c in self.conformance[:5]]
        if self.answers["traceback"]:
            out.append(f"{self.answers['traceback']} interaction answer(s) showed a traceback")
        if self.tracebacks:
            out.append(f"{self.tracebacks} traceback(s) in the log, e.g. {self.traceback_samples[:1]}")
        return out

    def lines(self) -> list[str]:
        ops = sum(v for k, v in self.operations.items() if k != "sweep")
        f = self.findings
        return [
            f"soak: {self.hours:g} virtual hour(s) in {self.wall_seconds:.0f} s (seed {self.seed})",
            f"  operations: {ops} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items()))
            + f"), sweeps {self.sweeps}",
            "  answers: " + ", ".join(f"{k} {v}" for k, v in sorted(self.answers.items())),
            f"  faults injected: {self.faults} of {self.mutations} Discord mutations "
            f"({100 * self.faults / max(self.mutations, 1):.1f}%, target {100 * self.fault_rate:g}%), "
            f"gateway drops {self.operations['gateway_drop']}, restarts {self.operations['restart']}, "
            f"database outages {self.operations['database_outage']}",
            f"  grants {f.grants}: applied {f.applied}, removed {f.removed}; narratives posted {f.narratives}; "
            f"latest removal {f.worst_late.total_seconds():+.0f} s after the approved end",
            f"  ledger verifies: {'yes' if self.ledger_ok else 'NO'}",
            f"  invariant violations: {len(self.violations)}",
            *(f"    - {v}" for v in self.violations),
        ]


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1
            if len(self.first) < 3:
                self.first.append(f"{record.name}: {record.getMessage()}: {self.format(record)[-1500:]}")


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


class Soak:
    def __init__(self, world: SandboxWorld, report: SoakReport, rng: random.Random) -> None:
        self.w, self.r, self.rng = world, report, rng
        self.g = world.guild

    async def rows(self, statement: Any) -> list[Any]:
        async with self.w.bot.session_factory() as session:
            return list((await session.scalars(statement)).all())

    def answered(self, text: str) -> None:
        if "Traceback" in text:
            kind = "traceback"
        elif (
            any(w in text for w in ("waiting for approval", "Extension request", "is revoked", "denied"))
            or "approved" in text.lower()
            or "applied" in text.lower()
            or "counted" in text.lower()
        ):
            kind = "accepted"
        else:
            kind = "refused"
        self.r.answers[kind] += 1

    async def interact(self, what: str, action: Any) -> None:
        self.r.operations[what] += 1
        try:
            out = await action()
        except SandboxError:
            self.r.answers["unanswered"] += 1
            return
        self.answered(out.text if out is not None else "")

    async def request(self) -> None:
        member = self.g.member(self.rng.choice(REQUESTERS))
        scope = self.rng.choice(tuple(DURATIONS))
        duration = self.rng.choice(DURATIONS[scope])
        await self.interact(
            "request",
            lambda: self.w.sb.slash(
                self.g, member, "jit request", scope=scope, duration=duration, timeout=10
            ),
        )

    async def vote(self) -> None:
        pending = await self.rows(
            select(AccessRequest).where(
                AccessRequest.status == RequestStatus.PENDING, AccessRequest.card_message_id.is_not(None)
            )
        )
        if not pending:
            return await self.request()
        req = self.rng.choice(pending)
        card = self.w.sb.messages_by_id.get(req.card_message_id)
        if card is None or not card.components:
            return None
        voter = self.g.member(self.rng.choice(APPROVERS))
        if self.rng.random() < 0.8:
            return await self.interact("approve", lambda: self.w.sb.click(voter, card, "Approve", timeout=10))

        async def deny() -> Any:
            modal = await self.w.sb.click(voter, card, "Deny", timeout=10)
            if modal.modal is None:
                return modal
            return await self.w.sb.submit_modal(voter, modal, reason="not now", timeout=10)

        return await self.interact("deny", deny)

    async def active(self) -> Grant | None:
        grants = await self.rows(select(Grant).where(Grant.status == GrantStatus.ACTIVE))
        return self.rng.choice(grants) if grants else None

    async def extend(self) -> None:
        grant = await self.active()
        if grant is None:
            return await self.request()
        holder = self.g.member(grant.subject_id)
        await self.interact(
            "extend",
            lambda: self.w.sb.slash(self.g, holder, "jit extend", grant=grant.id, duration="15m", timeout=10),
        )

    async def revoke(self) -> None:
        grant = await self.active()
        if grant is None:
            return await self.request()
        who = self.g.member(grant.subject_id)
        if self.rng.random() < 0.3:
            who = self.g.member(self.rng.choice(APPROVERS))
        await self.interact(
            "revoke", lambda: self.w.sb.slash(self.g, who, "jit revoke", grant=grant.id, timeout=10)
        )

    async def sweep(self) -> None:
        self.w.clock.advance(STEP)
        self.r.sweeps += 1
        await self.w.run_due()

    async def live(self) -> tuple[int, dt.datetime | None]:
        """Grants not yet ended, and the earliest moment one of them needs a sweep."""
        async with self.w.bot.session_factory() as session:
            n = await session.scalar(
                select(func.count())
                .select_from(Grant)
                .where(Grant.status.notin_([GrantStatus.EXPIRED, GrantStatus.REVOKED, GrantStatus.FAILED]))
            )
            due = await session.scalar(
                select(func.min(Grant.expires_at)).where(
                    Grant.status.in_([GrantStatus.ACTIVE, GrantStatus.APPLYING])
                )
            )
            waiting = await session.scalar(
                select(func.count()).select_from(NarrativeOutbox).where(NarrativeOutbox.posted_at.is_(None))
            )
        return int(n or 0) + int(waiting or 0), due


async def run_soak(
    hours: float,
    database_url: str,
    workdir: Path,
    *,
    seed: int = 7,
    ops_per_hour: float = 24.0,
    fault_rate: float = 0.2,
) -> SoakReport:
    """Run the soak; the report's ``violations`` must be empty."""
    started = time.monotonic()
    report = SoakReport(hours, seed, fault_rate)
    rng = random.Random(seed)
    clock = ManualClock(START, frozen=True)
    catcher = _Tracebacks()
    logging.getLogger().addHandler(catcher)
    tuning = sandbox_tuning(discord_sleep=_no_wait)
    # The policy names the guild by id, so the guild is built first (the placeholder is replaced).
    world = SandboxWorld(
        load_policy(_write(workdir, "1")), database_url=database_url, clock=clock, tuning=tuning
    )
    async with world:
        guild = world.add_guild(GUILD)
        world.policy = load_policy(_write(workdir, str(guild.id)))
        standing = {guild.id: standing_roles(guild)}
        await world.start_bot()
        soak = Soak(world, report, rng)
        chaos = world.sb.faults.chaos(fault_rate, seed=seed)
        steps = int(dt.timedelta(hours=hours) / STEP)
        per_step = ops_per_hour * STEP.total_seconds() / 3600
        # every two virtual hours (at least three times), and a gateway drop every ninety minutes
        restart_every = max(steps // max(int(hours / 2), 3), 1)
        drop_every = max(steps // max(int(hours / 1.5), 3), 1) + 1
        outage_at, outage_steps = steps * 2 // 5, 4  # once, for 40 virtual seconds
        actions = (soak.request, soak.request, soak.vote, soak.vote, soak.vote, soak.extend, soak.revoke)
        for step in range(steps):
            if step == outage_at:
                report.operations["database_outage"] += 1
                await world.database_down()
                for _ in range(outage_steps):
                    await soak.request()  # answered "the database is unavailable", nothing written
                    await soak.sweep()
                await world.database_up()
            if step and step % restart_every == 0:
                report.operations["restart"] += 1
                await world.restart_bot()
            if step and step % drop_every == 0:
                report.operations["gateway_drop"] += 1
                await world.sb.disconnect_gateway()
            while rng.random() < per_step:
                await rng.choice(actions)()
                if rng.random() >= per_step:
                    break
            await soak.sweep()
        # Drain: no more faults; let every grant run out (sweeping every STEP while anything is due).
        report.mutations, report.faults = chaos.seen, chaos.hits
        world.sb.faults.clear()
        for _ in range(20000):
            live, due = await soak.live()
            if not live:
                break
            if due is not None and due - clock.now() > STEP * 2:
                clock.advance(due - clock.now() - STEP)  # nothing can be due before then
            await soak.sweep()
        await world.settle()
        report.findings = await check(world.sb, [guild], world.bot.session_factory, standing, now=clock.now())
        report.ledger_ok, report.ledger_problems = await world.ledger_verifies()
        report.conformance = list(world.sb.conformance.violations)
    logging.getLogger().removeHandler(catcher)
    report.tracebacks, report.traceback_samples = catcher.count, catcher.first
    report.wall_seconds = time.monotonic() - started
    return report


def _write(workdir: Path, gid: str) -> Path:
    path = workdir / "soak.toml"
    path.write_text(policy(gid), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="virtual hours (default 24)")
    parser.add_argument("--ops-per-hour", type=float, default=24.0, help="operations per virtual hour")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of Discord mutations that fail")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="a dedicated, empty database (default: a temp SQLite file)")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # only what the traceback counter needs
    with tempfile.TemporaryDirectory(prefix="warden-soak-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'warden.db'}"
        report = asyncio.run(
            run_soak(
                args.hours, url, Path(tmp), seed=args.seed, ops_per_hour=args.ops_per_hour,
                fault_rate=args.fault_rate,
            )
        )  # fmt: skip
    print("\n".join(report.lines()))
    return 1 if report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
