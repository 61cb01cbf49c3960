"""`warden audit report --since DATE --out DIR`: the signed export plus a readable HTML report.

Exit status as for the other audit commands: 0 written and verified, 1 written but the
ledger does not verify (the report says so on its first line), 2 a setup problem.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit_cli import _database_url, _optional_policy, _signer, _with_session
from bot.clock import Clock, SystemClock
from bot.controls import ControlMap
from bot.report import ReportResult, write_report
from bot.settings import Settings
from bot.startup import StartupError


def parse_day(value: str, option: str) -> dt.datetime:
    """``2026-03-01`` (midnight UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise StartupError(
            f"{option} {value!r} is not a date: use YYYY-MM-DD (midnight UTC) or an ISO 8601 time "
            "such as 2026-03-01T09:00:00+00:00"
        ) from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def run_report(args: argparse.Namespace, settings: Settings, clock: Clock | None = None) -> int:
    now = (clock or SystemClock()).now()
    since = parse_day(args.since, "--since") if args.since else None
    until = parse_day(args.until, "--until") if getattr(args, "until", None) else now
    if since is not None and since >= until:
        raise StartupError(
            f"--since {args.since} is not before {'--until ' + args.until if args.until else 'now'}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise StartupError(f"--out {out} exists and is not a directory")
    policy = _optional_policy(args, settings)
    signer = _signer(settings, policy)
    url = _database_url(settings, policy)
    controls = ControlMap.load_default()

    async def work(session: AsyncSession) -> ReportResult:
        return await write_report(session, out, signer, controls, since=since, until=until, now=now)

    result = asyncio.run(_with_session(url, work))
    d, v = result.data, result.verification
    print(
        f"wrote {result.path}: {len(d.entries)} decisions, {len(d.grants)} grants, "
        f"{len(d.breakglass)} break-glass uses, {len(d.failed) + len(d.unreviewed())} failed controls; "
        f"evidence for all {v.entries} ledger entries beside it (key id {v.key_id})"
    )
    if not v.ok or v.export_ok is False:
        print("warning: the ledger does not verify; the report lists the problems:", file=sys.stderr)
        for problem in [*v.problems, *v.export_problems]:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0
