"""`warden attest report CAMPAIGN [--out FILE]`: a campaign's evidence as CSV (stdout by default).

Exit status: 0 written, 2 a setup problem (no database, no such campaign).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.attest.report import campaign_report
from bot.audit_cli import _database_url, _optional_policy, with_session_factory
from bot.services.errors import WardenError
from bot.settings import Settings
from bot.startup import StartupError


def add_attest_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser("attest", help="attestation campaigns: evidence for auditors")
    asub = p.add_subparsers(dest="attest_command", required=True)
    r = asub.add_parser("report", help="write one campaign's evidence as CSV")
    r.add_argument("campaign", type=int, help="the campaign number (/warden attest status lists them)")
    r.add_argument("--out", help="file to write (default: standard output)")
    r.add_argument("--config", help="policy file, for [warden] settings")
    return p


def run_attest_cli(args: argparse.Namespace, settings: Settings) -> int:
    if args.attest_command != "report":
        raise StartupError(f"unknown attest command {args.attest_command!r}; use report")
    url = _database_url(settings, _optional_policy(args, settings))

    async def work(factory: async_sessionmaker[AsyncSession]) -> str:
        async with factory() as session:
            return await campaign_report(session, args.campaign)

    try:
        text = asyncio.run(with_session_factory(url, {"attest_campaigns", "attest_items"}, work))
    except WardenError as exc:
        raise StartupError(exc.message) from None
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"campaign #{args.campaign}: {text.count(chr(10)) - 1} item(s) written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0
