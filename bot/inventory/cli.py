"""`warden inventory export --format json|csv`: the non-human identity inventory, from the database.

Writes what the bot last recorded (it refreshes the inventory from Discord while running); the
file is risk-sorted, each row with its score and reasons. Exit status: 0 written, 2 a setup problem.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.audit_cli import _database_url, _optional_policy, with_session_factory
from bot.clock import Clock, SystemClock
from bot.db.models import Identity
from bot.inventory.export import FORMATS, Format, render
from bot.inventory.service import InventoryService
from bot.settings import Settings
from bot.startup import StartupError

T = TypeVar("T")


def add_inventory_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``inventory export`` on the ``warden`` subparsers (``sub`` from ``add_subparsers``).

    Returns the command's parser, for ``set_defaults(func=...)``.
    """
    p = sub.add_parser("inventory", help="the inventory of bots, webhooks, integrations and tokens")
    isub = p.add_subparsers(dest="inventory_command", required=True)
    e = isub.add_parser("export", help="write the inventory, riskiest first, with each score's reasons")
    e.add_argument("--format", choices=FORMATS, default="json", help="json (default) or csv")
    e.add_argument("--out", help="file to write (default: standard output)")
    e.add_argument("--guild", type=int, help="guild id (needed when the database holds several guilds)")
    e.add_argument("--include-gone", action="store_true", help="also identities no longer in the server")
    e.add_argument("--dormant-days", type=int, default=30, help="days without activity that count as dormant")
    e.add_argument("--config", help="policy file, for [warden] settings")
    return p


def run_inventory_cli(args: argparse.Namespace, settings: Settings, *, clock: Clock | None = None) -> int:
    if args.inventory_command == "export":
        return _export(args, settings, clock or SystemClock())
    raise StartupError(f"unknown inventory command {args.inventory_command!r}; use export")


def _export(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    if args.dormant_days < 1:
        raise StartupError(f"--dormant-days {args.dormant_days}: give a number of days, 1 or more")
    fmt = cast(Format, args.format)
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise StartupError(
            f"--out {out} is a directory; give a file name such as {out / ('inventory.' + fmt)}"
        )
    policy = _optional_policy(args, settings)
    url = _database_url(settings, policy)

    async def work(factory: async_sessionmaker[AsyncSession]) -> str:
        async with factory() as s:
            guilds = sorted(set((await s.execute(select(Identity.guild_id))).scalars()))
        guild = args.guild
        if guild is None:
            if len(guilds) > 1:
                raise StartupError(
                    f"the database holds {len(guilds)} guilds ({', '.join(map(str, guilds))}); pick one with --guild"
                )
            guild = guilds[0] if guilds else 0
        elif guild not in guilds:
            raise StartupError(
                f"--guild {guild}: no inventory recorded for it"
                + (
                    f" (guilds with one: {', '.join(map(str, guilds))})"
                    if guilds
                    else " (the inventory is empty)"
                )
            )
        service = InventoryService(factory, clock, dormant_after=dt.timedelta(days=args.dormant_days))
        items = await service.items(guild, include_gone=args.include_gone)
        return render(items, fmt)

    text = asyncio.run(with_session_factory(url, {"identities", "access_tokens"}, work))
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StartupError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
        print(f"wrote the inventory to {out} ({fmt})", file=sys.stderr)
    return 0
