"""The `warden` command as an operator runs it: a subprocess (`python -m bot …`) with its own cwd and env.

`run` is exercised for real: the bot process connects to a sandbox Discord served from this
test's event loop, registers its commands and answers `/jit request` with an approval card.
Every subprocess's output is checked: the bot token never appears in it.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.db.migrate import alembic_config
from sandbox import SandboxDiscord
from sandbox.harness import ACME, build_guild
from tests.helpers import EXAMPLE, SANDBOX_TOKEN, SECRET, sqlite_url, warden, warden_env

# ------------------------------------------------------------------ check-config


def test_check_config_example(tmp_path: Path) -> None:
    r = warden(tmp_path, "check-config", str(EXAMPLE))
    assert r.code == 0, r.text
    assert "OK" in r.out and "1 guild(s)" in r.out and "deploy" in r.out


def test_check_config_names_bad_key_and_value(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('pending_ttl = "4h"', 'pending_tll = "4h"', 1)
    text = text.replace('max_duration = "8h"', 'max_duration = "8 hourz"', 1)
    bad = tmp_path / "config.toml"
    bad.write_text(text, encoding="utf-8")
    r = warden(tmp_path, "check-config", "config.toml")
    assert r.code == 2, r.text
    assert "pending_tll" in r.err and "pending_ttl" in r.err  # the typo and the suggestion
    assert "scope.deploy.max_duration" in r.err and "8 hourz" in r.err
    assert "Traceback" not in r.err


def test_check_config_missing_file_says_what_to_do(tmp_path: Path) -> None:
    r = warden(tmp_path, "check-config")  # default: ./config.toml
    assert r.code == 2
    assert "config.toml not found" in r.err and "config.example.toml" in r.err
    assert "Traceback" not in r.err


# ------------------------------------------------------------------ migrate


def test_migrate_twice(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    for _ in range(2):
        r = warden(tmp_path, "migrate", WARDEN_DATABASE_URL=sqlite_url(db))
        assert r.code == 0, r.text
        assert "newest schema" in r.out
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"ledger_entries", "ledger_head", "alembic_version"} <= tables
    assert version == head


# ------------------------------------------------------------------ run: refusals


def test_run_without_token(tmp_path: Path) -> None:
    r = warden(tmp_path, "run", "--config", str(EXAMPLE), WARDEN_TOKEN="")
    assert r.code == 2
    assert "WARDEN_TOKEN" in r.err and "Traceback" not in r.err


def test_run_with_token_and_broken_config_never_prints_token(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace('pending_ttl = "4h"', 'pending_tll = "4h"', 1)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    r = warden(tmp_path, "run", WARDEN_TOKEN=SECRET)
    assert r.code == 2 and "pending_tll" in r.err
    # A token pasted into the policy is refused without being echoed back.
    text = EXAMPLE.read_text(encoding="utf-8").replace("\n[warden]\n", f'\n[warden]\ntoken = "{SECRET}"\n', 1)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    r = warden(tmp_path, "check-config")
    assert r.code == 2 and "warden.token" in r.err and "WARDEN_TOKEN" in r.err
    r = warden(tmp_path, "run", "--config", str(EXAMPLE), WARDEN_TOKEN=SECRET, WARDEN_LOG_LEVEL="loud")
    assert r.code == 2 and "WARDEN_LOG_LEVEL" in r.err


# ------------------------------------------------------------------ run: for real, then audit


@dataclass
class BotRun:
    dir: Path
    db: Path
    key: Path
    output: str
    exit_code: int
    stop_seconds: float
    card_text: str
    reply_text: str
    violations: list[str]

    def env(self, **extra: str) -> dict[str, str]:
        return {"WARDEN_DATABASE_URL": sqlite_url(self.db), "WARDEN_SIGNING_KEY": str(self.key), **extra}


async def _run_bot_against_sandbox(workdir: Path) -> BotRun:
    db, key = workdir / "w.db", workdir / "k.pem"
    async with SandboxDiscord(token=SANDBOX_TOKEN) as sb:
        guild = build_guild(sb, ACME)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(EXAMPLE),
            cwd=workdir,
            env=warden_env(
                WARDEN_TOKEN=sb.token,
                WARDEN_DISCORD_API_URL=sb.api_url,
                WARDEN_DISCORD_GATEWAY_URL=sb.gateway_url,
                WARDEN_DATABASE_URL=sqlite_url(db),
                WARDEN_SIGNING_KEY=str(key),
            ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await sb.wait_until_ready(timeout=20)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not any(c["name"] == "jit" for c in [*sb.commands(), *sb.commands(guild)]):
                assert loop.time() < deadline, "the bot did not register /jit"
                await asyncio.sleep(0.05)
            alice = guild.member("alice")
            reply = await sb.slash(
                guild, alice, "jit request", scope="deploy", duration="1h", reason="cli test", timeout=10
            )
            card = await sb.wait_for_message(guild.channel("approvals"), "Access request #1", timeout=10)
        finally:
            stopped = time.monotonic()
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)  # what systemd and containers send
            try:
                output, _ = await asyncio.wait_for(proc.communicate(), 15)
            except TimeoutError:
                proc.kill()
                output, _ = await proc.communicate()
                raise AssertionError("warden run did not stop within 15s of SIGTERM") from None
        return BotRun(
            dir=workdir,
            db=db,
            key=key,
            output=output.decode(errors="replace"),
            exit_code=proc.returncode,
            stop_seconds=time.monotonic() - stopped,
            card_text=card.text,
            reply_text=reply.text,
            violations=list(sb.conformance.violations),
        )


@pytest.fixture(scope="module")
def bot_run(tmp_path_factory: pytest.TempPathFactory) -> BotRun:
    """`warden run` in a subprocess against a sandbox, once per module (a sync fixture owning its loop)."""
    workdir = tmp_path_factory.mktemp("run")
    return asyncio.run(_run_bot_against_sandbox(workdir))


def test_run_end_to_end_against_sandbox(bot_run: BotRun) -> None:
    assert "waiting for approval" in bot_run.reply_text
    assert "Access request #1" in bot_run.card_text and "deploy" in bot_run.card_text
    assert "cli test" in bot_run.card_text
    assert bot_run.exit_code == 0, bot_run.output[-2000:]
    assert bot_run.stop_seconds < 10
    assert "warden: stopped" in bot_run.output  # a clean close on SIGTERM, not a kill
    assert bot_run.violations == []
    assert SANDBOX_TOKEN not in bot_run.output
    assert "Traceback" not in bot_run.output
    assert bot_run.key.exists() and (bot_run.key.stat().st_mode & 0o077) == 0


def test_audit_verify_after_run(bot_run: BotRun) -> None:
    r = warden(bot_run.dir, "audit", "verify", **bot_run.env())
    assert r.code == 0, r.text
    assert "ledger OK" in r.out and "chain and signatures verified" in r.out
    assert "BEGIN PRIVATE KEY" not in r.text and bot_run.key.read_text() not in r.text


def test_audit_verify_detects_tampering(bot_run: BotRun, tmp_path: Path) -> None:
    db = tmp_path / "tampered.db"
    shutil.copy(bot_run.db, db)
    with sqlite3.connect(db) as conn:
        (entry_id,) = conn.execute("SELECT min(id) FROM ledger_entries").fetchone()
        conn.execute("UPDATE ledger_entries SET reason = 'nothing to see here' WHERE id = ?", (entry_id,))
    r = warden(tmp_path, "audit", "verify", **bot_run.env(WARDEN_DATABASE_URL=sqlite_url(db)))
    assert r.code == 1, r.text
    assert f"entry {entry_id}: hash does not match its contents" in r.err


def test_audit_export_then_verify_export(bot_run: BotRun, tmp_path: Path) -> None:
    out = tmp_path / "evidence"
    r = warden(tmp_path, "audit", "export", str(out), **bot_run.env())
    assert r.code == 0, r.text
    assert {p.name for p in out.iterdir()} >= {"ledger.jsonl", "public_key.pem", "head.json", "README.txt"}
    assert b"PRIVATE" not in b"".join(p.read_bytes() for p in out.iterdir())
    pem = tmp_path / "warden-public.pem"
    shutil.copy(out / "public_key.pem", pem)  # as if handed over by another channel
    r = warden(tmp_path, "audit", "verify", "--export", str(out), "--public-key", str(pem))
    assert r.code == 0, r.text
    assert "OK" in r.out
    # A line cut from the end of the export is caught by the signed head.json.
    lines = (out / "ledger.jsonl").read_text().splitlines(keepends=True)
    (out / "ledger.jsonl").write_text("".join(lines[:-1]))
    r = warden(tmp_path, "audit", "verify", "--export", str(out), "--public-key", str(pem))
    assert r.code == 1 and "head.json" in r.err


def test_audit_verify_setup_problems(tmp_path: Path) -> None:
    r = warden(tmp_path, "audit", "verify", WARDEN_SIGNING_KEY=str(tmp_path / "missing.pem"))
    assert r.code == 2 and "missing.pem not found" in r.err and "--public-key" in r.err
    r = warden(tmp_path, "audit", "verify", "--export", str(tmp_path / "nothing"))
    assert r.code == 2 and "not an evidence export" in r.err


# ------------------------------------------------------------------ start-up failures


def test_run_when_discord_cannot_be_reached_says_so(tmp_path: Path) -> None:
    r = warden(
        tmp_path,
        "run",
        "--config",
        str(EXAMPLE),
        timeout=60,
        WARDEN_TOKEN=SANDBOX_TOKEN,
        WARDEN_DISCORD_API_URL="http://127.0.0.1:1/api/v10",
        WARDEN_DISCORD_GATEWAY_URL="ws://127.0.0.1:1/",
        WARDEN_DATABASE_URL=sqlite_url(tmp_path / "w.db"),
        WARDEN_SIGNING_KEY=str(tmp_path / "k.pem"),
    )
    assert r.code == 2, r.text
    assert "cannot reach Discord at http://127.0.0.1:1/api/v10" in r.err
    assert "Traceback" not in r.text and SANDBOX_TOKEN not in r.text


async def test_run_with_a_token_discord_rejects_says_so(tmp_path: Path) -> None:
    async with SandboxDiscord(token=SANDBOX_TOKEN) as sb:
        build_guild(sb, ACME)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(EXAMPLE),
            cwd=tmp_path,
            env=warden_env(
                WARDEN_TOKEN="not-the-token-123",
                WARDEN_DISCORD_API_URL=sb.api_url,
                WARDEN_DISCORD_GATEWAY_URL=sb.gateway_url,
                WARDEN_DATABASE_URL=sqlite_url(tmp_path / "w.db"),
                WARDEN_SIGNING_KEY=str(tmp_path / "k.pem"),
            ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode() + err.decode()
    assert proc.returncode == 2, text
    assert "Discord rejected the bot token" in text
    assert "not-the-token-123" not in text and "Traceback" not in text


def test_run_when_the_database_is_down_says_so(tmp_path: Path) -> None:
    r = warden(
        tmp_path,
        "run",
        "--config",
        str(EXAMPLE),
        WARDEN_TOKEN=SANDBOX_TOKEN,
        WARDEN_DATABASE_URL="postgresql+asyncpg://warden:hunter2@127.0.0.1:1/warden",
        WARDEN_SIGNING_KEY=str(tmp_path / "k.pem"),
    )
    assert r.code == 2, r.text
    assert "cannot reach the database at postgresql+asyncpg://warden:***@127.0.0.1:1/warden" in r.err
    assert "hunter2" not in r.text and "Traceback" not in r.text
