"""`warden token verify` and `warden inventory export`, against a migrated database."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.db.session import create_engine, create_session_factory
from bot.inventory.cli import add_inventory_parser, run_inventory_cli
from bot.inventory.service import InventoryService
from bot.inventory.snapshot import BotData, ChannelData, GuildSnapshot, WebhookData
from bot.settings import Settings, load_settings
from bot.startup import StartupError
from bot.tokens.cli import add_token_parser, run_token_cli
from bot.tokens.service import IssuedToken, TokenService

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warden")
    sub = p.add_subparsers(dest="command", required=True)
    add_inventory_parser(sub)
    add_token_parser(sub)
    return p


@pytest.fixture
def settings(engine, db_url: str, tmp_path: Path) -> Settings:
    # `engine` migrates the database; the CLI opens its own connections in its own event loop.
    return load_settings(database_url=db_url, config=tmp_path / "absent.toml")


async def _with_services(url: str, clock: ManualClock, work: Any) -> Any:
    engine = create_engine(url)
    try:
        factory = create_session_factory(engine)
        return await work(TokenService(factory, clock), InventoryService(factory, clock))
    finally:
        await engine.dispose()


def _issue(url: str, clock: ManualClock) -> IssuedToken:
    async def work(tokens: TokenService, _inv: InventoryService) -> IssuedToken:
        return await tokens.issue(guild_id=5, scope_id="ci", subject_id=42, ttl=dt.timedelta(hours=1))

    return asyncio.run(_with_services(url, clock, work))


def test_token_verify_valid_then_expired(settings: Settings, db_url: str, capsys) -> None:
    clock = ManualClock(START, frozen=True)
    issued = _issue(db_url, clock)
    args = parser().parse_args(["token", "verify", "--json"])
    assert run_token_cli(args, settings, stdin=io.StringIO(issued.value.reveal() + "\n"), clock=clock) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["active"] is True and out["scope"] == "ci" and out["sub"] == "42" and out["use_count"] == 1
    assert issued.value.reveal() not in json.dumps(out)

    clock.advance(dt.timedelta(hours=2))
    assert run_token_cli(args, settings, stdin=io.StringIO(issued.value.reveal()), clock=clock) == 1
    assert json.loads(capsys.readouterr().out) == {"active": False, "reason": "expired"}

    plain = parser().parse_args(["token", "verify"])
    assert run_token_cli(plain, settings, stdin=io.StringIO("nonsense"), clock=clock) == 1
    assert capsys.readouterr().out.strip() == "not valid: malformed"


def test_token_verify_needs_a_token_on_stdin(settings: Settings) -> None:
    args = parser().parse_args(["token", "verify"])
    with pytest.raises(StartupError, match="no token given"):
        run_token_cli(args, settings, stdin=io.StringIO("  \n"))


def test_inventory_export_json_and_csv(settings: Settings, db_url: str, tmp_path: Path, capsys) -> None:
    clock = ManualClock(START, frozen=True)

    async def work(_tokens: TokenService, inv: InventoryService) -> None:
        await inv.refresh(
            GuildSnapshot(
                guild_id=5,
                owner_id=1,
                role_permissions={5: 3072, 9: 8},
                channels=(ChannelData(1),),
                bots=(BotData(77, "admin bot", role_ids=(9,)),),
                webhooks=(WebhookData(88, "ci hook", channel_id=1, creator_id=3),),
            )
        )

    asyncio.run(_with_services(db_url, clock, work))
    args = parser().parse_args(["inventory", "export", "--format", "json"])
    assert run_inventory_cli(args, settings, clock=clock) == 0
    data = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in data["items"]] == ["admin bot", "ci hook"]
    out = tmp_path / "inv.csv"
    args = parser().parse_args(["inventory", "export", "--format", "csv", "--out", str(out), "--guild", "5"])
    assert run_inventory_cli(args, settings, clock=clock) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["name"] == "admin bot" and "has no owner" in rows[0]["risk_reasons"]
    assert rows[1]["owner_id"] == "3" and rows[1]["owner_source"] == "inferred"

    with pytest.raises(StartupError, match="no inventory recorded"):
        run_inventory_cli(parser().parse_args(["inventory", "export", "--guild", "6"]), settings, clock=clock)
    with pytest.raises(SystemExit):
        parser().parse_args(["inventory", "export", "--format", "xml"])


def test_inventory_export_on_an_unmigrated_database(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{db}", config=tmp_path / "absent.toml")
    with pytest.raises(StartupError, match="warden migrate"):
        run_inventory_cli(parser().parse_args(["inventory", "export"]), settings)
