"""`warden token verify` and `warden inventory export` as an operator or a gateway runs them: a subprocess.

The token goes in on standard input only; each valid check records a use; exit codes are what
docs/tokens.md promises (0 valid, 1 not valid, 2 setup problem); the token never appears in the output.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import SystemClock
from bot.inventory.service import InventoryService
from bot.inventory.snapshot import BotData, ChannelData, GuildSnapshot
from bot.tokens.service import TokenService
from tests.helpers import warden_env as _env

GUILD = 81384788765712384


def warden(cwd: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=_env(**env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run(*args: str, **kw: str) -> subprocess.CompletedProcess[str]:
    cwd = Path(kw.pop("cwd"))
    stdin = kw.pop("stdin", "")
    return await asyncio.to_thread(warden, cwd, *args, stdin=stdin, **kw)


async def test_token_verify_records_uses_and_refuses_the_rest(
    session_factory: async_sessionmaker[AsyncSession], db_url: str, tmp_path: Path
) -> None:
    tokens = TokenService(session_factory, SystemClock())  # the CLI checks against the real clock
    issued = await tokens.issue(
        guild_id=GUILD, scope_id="deploy-api", subject_id=42, ttl=dt.timedelta(hours=1)
    )
    secret = issued.value.reveal()
    env = {"cwd": str(tmp_path), "WARDEN_DATABASE_URL": db_url}

    ok = await run("token", "verify", stdin=secret, **env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"valid: token {issued.info.id} for scope deploy-api, subject 42")
    assert "(use 1)" in ok.stdout

    as_json = await run("token", "verify", "--json", stdin=secret + "\n", **env)
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["active"] is True and body["scope"] == "deploy-api" and body["use_count"] == 2
    assert body["sub"] == "42" and body["guild_id"] == str(GUILD)
    assert (await tokens.get(issued.info.id)).use_count == 2  # each valid check is a recorded use

    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    for presented, reason in ((wrong, "unknown"), ("not-a-token", "malformed")):
        bad = await run("token", "verify", "--json", stdin=presented, **env)
        assert bad.returncode == 1 and json.loads(bad.stdout) == {"active": False, "reason": reason}
    assert (await tokens.get(issued.info.id)).use_count == 2  # refusals are not uses

    await tokens.revoke(issued.info.id, reason="test")
    revoked = await run("token", "verify", stdin=secret, **env)
    assert revoked.returncode == 1 and revoked.stdout.strip() == "not valid: revoked"

    for r in (ok, as_json, revoked):
        assert secret not in r.stdout + r.stderr  # never echoed back


async def test_token_verify_setup_problems_exit_2(tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}"
    r = await run("token", "verify", stdin="wdn1.x.y", cwd=str(tmp_path), WARDEN_DATABASE_URL=missing)
    assert r.returncode == 2 and "warden:" in r.stderr
    empty = await run("token", "verify", stdin="", cwd=str(tmp_path), WARDEN_DATABASE_URL=missing)
    assert empty.returncode == 2 and "no token given" in empty.stderr


async def test_inventory_export_json_and_csv(
    session_factory: async_sessionmaker[AsyncSession], db_url: str, tmp_path: Path
) -> None:
    clock = SystemClock()
    inventory = InventoryService(session_factory, clock)
    snapshot = GuildSnapshot(
        guild_id=GUILD,
        owner_id=1,
        role_permissions={GUILD: 0},
        channels=(ChannelData(id=10),),
        bots=(BotData(id=777, name="ci-bot"),),
        taken_at=clock.now(),
    )
    await inventory.refresh(snapshot)
    env = {"cwd": str(tmp_path), "WARDEN_DATABASE_URL": db_url}

    shown = await run("inventory", "export", "--format", "json", **env)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)["items"]
    assert [r["external_id"] for r in rows] == ["777"] and rows[0]["owner_id"] is None
    assert any("has no owner" in reason for reason in rows[0]["risk_reasons"])

    out = tmp_path / "inventory.csv"
    written = await run("inventory", "export", "--format", "csv", "--out", str(out), **env)
    assert written.returncode == 0, written.stderr
    assert f"wrote the inventory to {out} (csv)" in written.stderr
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert table[0]["name"] == "ci-bot" and table[0]["kind"] == "bot"

    bad = await run("inventory", "export", "--format", "xml", **env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
