"""The `warden` command: run · migrate · check-config · init · sandbox · audit · inventory export · token verify."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.audit.defaults import active_rules_summary
from bot.logs import configure_logging, redact
from bot.policy import Policy, PolicyError, load_policy, review_policy
from bot.settings import Settings, SettingsError, load_settings, redact_url
from bot.startup import StartupError

if TYPE_CHECKING:
    from bot.wiring import Tuning

log = logging.getLogger("warden")

DEFAULT_SIGNING_KEY = Path("warden-signing.key")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise StartupError(str(exc)) from None


def _policy(path: Path) -> Policy:
    if not path.exists():
        raise StartupError(
            f"config file {path} not found: `warden init` writes the example policy "
            "(config.example.toml) to start from, or point WARDEN_CONFIG / --config at yours"
        )
    try:
        return load_policy(path)
    except PolicyError as exc:
        n = len(exc.problems)
        lines = "\n".join(f"  - {p}" for p in exc.problems)
        raise StartupError(f"{path} has {n} problem{'s' if n != 1 else ''}:\n{lines}") from None


def _database_url(settings: Settings, policy: Policy | None) -> str:
    try:
        return settings.resolved_database_url(policy)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("warden")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def _signing_key_path(settings: Settings, policy: Policy | None) -> Path:
    return settings.resolved_signing_key(policy) or DEFAULT_SIGNING_KEY


async def _migrate(url: str) -> None:
    from bot.db.migrate import upgrade_to_head
    from bot.db.session import create_engine

    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


def point_at_discord(settings: Settings) -> None:
    """WARDEN_DISCORD_API_URL / _GATEWAY_URL: a REST proxy or the local sandbox. Nothing else differs."""
    if settings.discord_api_url or settings.discord_gateway_url:
        from bot.discord_endpoints import point_discord_at

        point_discord_at(
            settings.discord_api_url or "https://discord.com/api/v10",
            settings.discord_gateway_url or "wss://gateway.discord.gg/",
        )


async def _run(settings: Settings, policy: Policy, url: str, tuning: Tuning) -> None:
    from bot.clock import SystemClock
    from bot.db.migrate import upgrade_to_head
    from bot.db.session import create_engine, create_session_factory
    from bot.health.server import HealthServer
    from bot.ledger import open_signer
    from bot.services.base import DB_DOWN
    from bot.wiring import build_bot

    token = settings.bot_token()
    redact(token)  # whatever a library logs, the token never reaches the log
    point_at_discord(settings)
    engine = create_engine(url)
    try:
        log.info("database %s: migrating to head", redact_url(url))
        try:
            await upgrade_to_head(engine)
        except DB_DOWN as exc:
            raise StartupError(
                f"cannot reach the database at {redact_url(url)} ({type(exc).__name__}): is it running, "
                "and is WARDEN_DATABASE_URL right?"
            ) from None
        sessions = create_session_factory(engine)
        signer = await open_signer(sessions, _signing_key_path(settings, policy), now=SystemClock().now())
        shard_ids = settings.shard_ids()
        if shard_ids is not None:
            log.info("running shard(s) %s of %d", ",".join(map(str, shard_ids)), settings.shard_count)
        if settings.checkpoint_path is not None:
            log.info(
                "ledger checkpoints every %ss to %s (ship them off this machine)",
                settings.checkpoint_seconds,
                settings.checkpoint_path,
            )
        bot = build_bot(
            policy=policy,
            clock=SystemClock(),
            session_factory=sessions,
            signer=signer,
            tuning=tuning,
            shard_ids=shard_ids,
            shard_count=settings.shard_count,
        )
        health = HealthServer(bot, sessions, settings.resolved_health(policy))
        # systemd and container runtimes stop with SIGTERM: close the gateway and scheduler cleanly.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
        async with bot, health:
            await bot.start(token)
        log.info("stopped")
    finally:
        await engine.dispose()


def _tuning(settings: Settings) -> Tuning:
    """Production's Tuning, or WARDEN_TUNING / WARDEN_KILL_AT's (reliability testing only)."""
    from bot.wiring import Tuning

    checkpoints = {
        "checkpoint_path": settings.checkpoint_path,
        "checkpoint_seconds": settings.checkpoint_seconds,
    }
    if not settings.tuning and settings.kill_at is None:
        return Tuning(**checkpoints)  # type: ignore[arg-type]
    try:
        tuning = Tuning.overridden(settings.tuning, settings.kill_at)
    except ValueError as exc:
        raise StartupError(f"WARDEN_TUNING / WARDEN_KILL_AT: {exc}") from None
    log.warning("reliability testing: tuning %s, kill point %s", settings.tuning, settings.kill_at)
    return dataclasses.replace(tuning, **checkpoints)  # type: ignore[arg-type]


def _warn_policy(policy: Policy) -> None:
    """What check-config reports but does not stop `warden run`: said once at start-up."""
    log.info("%s", active_rules_summary(policy))
    for problem in review_policy(policy):
        log.warning("policy: %s (warden check-config lists these)", problem)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(shards=args.shards, shard_count=args.shard_count)
    policy = _policy(Path(args.config) if args.config else settings.config)
    configure_logging(settings.resolved_log_level(policy), settings.resolved_log_format(policy))
    try:
        settings.bot_token()
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    url = _database_url(settings, policy)
    tuning = _tuning(settings)
    _warn_policy(policy)
    import aiohttp
    import discord

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(settings, policy, url, tuning))
    except discord.LoginFailure:
        raise StartupError(
            "Discord rejected the bot token: check WARDEN_TOKEN (or the token file) — "
            "copy it again from the Developer Portal's Bot page"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise StartupError(
            "Discord refused the Server Members intent: enable it in the Developer Portal "
            "(Bot → Privileged Gateway Intents), then start Warden again"
        ) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise StartupError(
            f"cannot reach Discord at {discord.http.Route.BASE} ({type(exc).__name__}): check the network, "
            "or WARDEN_DISCORD_API_URL / WARDEN_DISCORD_GATEWAY_URL if you point Warden elsewhere"
        ) from None
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    cfg = Path(args.config) if args.config else settings.config
    policy = _policy(cfg) if cfg.exists() else None
    url = _database_url(settings, policy)
    configure_logging("INFO", settings.resolved_log_format(policy))
    from bot.services.base import DB_DOWN

    try:
        asyncio.run(_migrate(url))
    except DB_DOWN as exc:
        raise StartupError(f"cannot reach the database at {redact_url(url)} ({type(exc).__name__})") from None
    print(f"database {redact_url(url)} is at the newest schema")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    if args.path and args.config and Path(args.path) != Path(args.config):
        raise StartupError(f"two policy files given ({args.path} and --config {args.config}); give one")
    chosen = args.config or args.path
    path = Path(chosen) if chosen else _settings().config
    policy = _policy(path)
    problems = review_policy(policy)
    if problems:
        n = len(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        raise StartupError(f"{path} has {n} problem{'s' if n != 1 else ''}:\n{lines}")
    scopes = ", ".join(s.id for s in policy.scopes) or "none"
    print(f"{path}: OK — {len(policy.guilds)} guild(s), {len(policy.scopes)} scope(s) ({scopes})")
    print(active_rules_summary(policy))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from importlib.resources import files

    directory = Path(args.dir)
    target = directory / "config.toml"
    if target.exists():
        raise StartupError(f"{target} already exists; not overwriting it (move it away, or edit it)")
    if not directory.is_dir():
        raise StartupError(f"{directory} is not a directory; create it first")
    text = (files("bot.data") / "config.example.toml").read_text(encoding="utf-8")
    try:
        with target.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise StartupError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(
        f"wrote {target} (the documented example policy). Next:\n"
        f"  1. edit it: your server, channels, roles and scopes\n"
        f"  2. warden check-config --config {target}\n"
        f"  3. WARDEN_TOKEN=… warden run --config {target}"
    )
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox.walkthrough import main as sandbox_main  # noqa: TID251 (the one lazy import, on demand)

    return sandbox_main(args)


def cmd_audit(args: argparse.Namespace) -> int:
    if getattr(args, "audit_command", None) is None:  # a bare `warden audit`: show what it can do
        args.audit_parser.print_help()
        return 2
    from bot.audit_cli import run_audit

    return run_audit(args, _settings())


def cmd_inventory(args: argparse.Namespace) -> int:
    from bot.inventory.cli import run_inventory_cli

    return run_inventory_cli(args, _settings())


def cmd_token(args: argparse.Namespace) -> int:
    from bot.tokens.cli import run_token_cli

    return run_token_cli(args, _settings())


def cmd_attest(args: argparse.Namespace) -> int:
    from bot.attest.cli import run_attest_cli

    return run_attest_cli(args, _settings())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden", description="Just-in-time access and attestations for Discord"
    )
    parser.add_argument("--version", action="version", version=f"warden {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the bot (migrates the database first)")
    p.add_argument("--config", help="policy file (default: $WARDEN_CONFIG or config.toml)")
    p.add_argument("--shards", help="gateway shard ids this process runs, e.g. 0,1 (default: $WARDEN_SHARDS)")
    p.add_argument(
        "--shard-count", type=int, help="total number of shards across all processes ($WARDEN_SHARD_COUNT)"
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("migrate", help="bring the database to the newest schema")
    p.add_argument("--config", help="policy file, for [warden].database_url")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("check-config", help="validate a policy file and exit")
    p.add_argument("path", nargs="?", help="policy file (default: $WARDEN_CONFIG or config.toml)")
    p.add_argument("--config", help="policy file (same as the positional argument)")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("init", help="write the example policy to DIR/config.toml to start from")
    p.add_argument("dir", nargs="?", default=".", help="directory to write config.toml in (default: .)")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("sandbox", help="run the real bot against a local Discord (no token, no server)")
    p.add_argument("--scenario", action="append", help="scenario TOML file to run (repeatable)")
    p.add_argument(
        "--config",
        help="rehearse this policy in a server built from it (with --scenario: the files play it instead "
        "of their own policy)",
    )
    p.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    p.add_argument("-v", "--verbose", action="store_true", help="also print Warden's and discord.py's logs")
    p.set_defaults(func=cmd_sandbox)
    p = sub.add_parser("audit", help="verify the signed ledger or export evidence")
    asub = p.add_subparsers(dest="audit_command")
    v = asub.add_parser("verify", help="verify the hash chain and signatures")
    v.add_argument("--public-key", help="PEM public key (default: derived from the signing key)")
    v.add_argument("--export", help="verify an exported evidence directory instead of the database")
    v.add_argument("--config", help="policy file, for [warden] settings")
    v.add_argument("--checkpoint", action="append", help="checkpoint file or directory to check against")
    e = asub.add_parser("export", help="write signed evidence for an auditor")
    e.add_argument("out", help="directory to write")
    e.add_argument("--config", help="policy file, for [warden] settings")
    r = asub.add_parser("report", help="write the signed export plus a readable HTML report")
    r.add_argument("--out", required=True, help="directory to write (report.html beside the export)")
    r.add_argument("--since", help="first day to report, YYYY-MM-DD UTC (default: the first entry)")
    r.add_argument("--until", help="day to stop before, YYYY-MM-DD UTC (default: now)")
    r.add_argument("--config", help="policy file, for [warden] settings")
    e.add_argument("--since", help="export entries from this date (ISO 8601; UTC unless given)")
    e.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="ledger file format")
    c = asub.add_parser("checkpoint", help="write a signed checkpoint of the ledger's length and head")
    c.add_argument(
        "--out", help="file, or DIR/ for a new file in it each time (default: ledger-checkpoints/)"
    )
    c.add_argument("--config", help="policy file, for [warden] settings")
    r = asub.add_parser("rotate-key", help="make a new signing key active; old entries stay verifiable")
    r.add_argument("--lost-key", action="store_true", help="the current key is lost: start a new one")
    r.add_argument("--config", help="policy file, for [warden] settings")
    p.set_defaults(func=cmd_audit, audit_parser=p)
    from bot.attest.cli import add_attest_parser
    from bot.inventory.cli import add_inventory_parser
    from bot.tokens.cli import add_token_parser

    add_inventory_parser(sub).set_defaults(func=cmd_inventory)
    add_token_parser(sub).set_defaults(func=cmd_token)
    add_attest_parser(sub).set_defaults(func=cmd_attest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (StartupError, SettingsError) as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
