"""`warden audit checkpoint|rotate-key|export|verify` and the missing-key refusal, as an operator runs them."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.ledger import open_signer
from tests.helpers import EXAMPLE, SANDBOX_TOKEN, append_n, sqlite_url, warden

NOW = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def ledger_db(tmp_path: Path) -> dict[str, str]:
    """A SQLite database with 6 signed entries and the key file they were signed with."""
    db, key = tmp_path / "w.db", tmp_path / "warden-signing.key"
    engine = create_engine(sqlite_url(db))
    try:
        await upgrade_to_head(engine)
        factory = create_session_factory(engine)
        signer = await open_signer(factory, key, now=NOW)
        await append_n(factory, signer, 6)
    finally:
        await engine.dispose()
    return {"WARDEN_DATABASE_URL": sqlite_url(db), "WARDEN_SIGNING_KEY": str(key)}


def test_run_refuses_to_replace_a_missing_key(ledger_db: dict[str, str], tmp_path: Path) -> None:
    key = Path(ledger_db["WARDEN_SIGNING_KEY"])
    key.unlink()
    r = warden(
        tmp_path,
        "run",
        "--config",
        str(EXAMPLE),
        WARDEN_TOKEN=SANDBOX_TOKEN,
        WARDEN_DISCORD_API_URL="http://127.0.0.1:1/api/v10",
        WARDEN_DISCORD_GATEWAY_URL="ws://127.0.0.1:1/",
        **ledger_db,
    )
    assert r.code == 2, r.text
    line = r.err.strip().splitlines()[-1]
    assert line.startswith(f"warden: ledger signing key {key} is missing")
    assert "unverifiable" in line and "backup" in line and "rotate-key" in line
    assert "Traceback" not in r.text
    assert not key.exists()  # nothing was created in its place


def test_checkpoint_then_truncate_then_verify(ledger_db: dict[str, str], tmp_path: Path) -> None:
    r = warden(tmp_path, "audit", "checkpoint", "--out", f"{tmp_path / 'cps'}/", **ledger_db)
    assert r.code == 0, r.text
    assert "Ledger checkpoint: 6 entries" in r.out
    (cp,) = (tmp_path / "cps").glob("*.json")
    assert json.loads(cp.read_text())["entries"] == 6
    r = warden(tmp_path, "audit", "verify", "--checkpoint", str(tmp_path / "cps"), **ledger_db)
    assert r.code == 0, r.text
    assert "reaches all 1 checkpoint(s)" in r.out

    db = ledger_db["WARDEN_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM ledger_entries WHERE id > 4")
        conn.execute(
            "UPDATE ledger_head SET last_entry_id = 4, last_hash = (SELECT hash FROM ledger_entries WHERE id = 4)"
        )
    assert warden(tmp_path, "audit", "verify", **ledger_db).code == 0  # the chain alone cannot see it
    r = warden(tmp_path, "audit", "verify", "--checkpoint", str(cp), **ledger_db)
    assert r.code == 1, r.text
    assert f"checkpoint {cp}" in r.err and "but the ledger ends at entry 4 with 4 entries" in r.err
    assert "Traceback" not in r.text

    r = warden(tmp_path, "audit", "verify", "--checkpoint", str(tmp_path / "nope.json"), **ledger_db)
    assert r.code == 2 and "nope.json: no such file" in r.err
    (tmp_path / "a-file").write_text("")
    r = warden(tmp_path, "audit", "checkpoint", "--out", str(tmp_path / "a-file" / "cp.json"), **ledger_db)
    assert r.code == 2 and "cannot write the checkpoint" in r.err and "database" not in r.err, r.text


def test_rotate_key_then_export_since_as_csv(ledger_db: dict[str, str], tmp_path: Path) -> None:
    key = Path(ledger_db["WARDEN_SIGNING_KEY"])
    old_pem = tmp_path / "old.pem"
    r = warden(tmp_path, "audit", "export", str(tmp_path / "before"), **ledger_db)
    assert r.code == 0, r.text
    old_pem.write_bytes((tmp_path / "before" / "public_key.pem").read_bytes())
    before = key.read_bytes()

    r = warden(tmp_path, "audit", "rotate-key", **ledger_db)
    assert r.code == 0, r.text
    assert "signing key rotated" in r.out and "handover recorded as ledger entry 7" in r.out
    assert key.read_bytes() != before and (key.stat().st_mode & 0o077) == 0
    assert "PRIVATE" not in r.text

    r = warden(tmp_path, "audit", "verify", "--public-key", str(old_pem), **ledger_db)
    assert r.code == 0, r.text  # the old key alone still proves everything, through the handover

    out = tmp_path / "q1"
    r = warden(
        tmp_path,
        "audit",
        "export",
        str(out),
        "--since",
        "2026-03-02T09:00:03",
        "--format",
        "csv",
        **ledger_db,
    )
    assert r.code == 0, r.text
    assert "exported 4 of 7 ledger entries" in r.out and "as csv" in r.out
    assert "note: this export starts after entry 3" in r.out
    head = json.loads((out / "head.json").read_text())
    assert len(head["keys"]) == 2 and head["anchor_entry_id"] == 3
    r = warden(tmp_path, "audit", "verify", "--export", str(out), **ledger_db)
    assert r.code == 0, r.text
    assert "export" in r.out and "OK: 4 entries" in r.out

    r = warden(tmp_path, "audit", "export", str(tmp_path / "x"), "--since", "last tuesday", **ledger_db)
    assert r.code == 2 and "--since 'last tuesday' is not a date" in r.err


def test_verify_export_with_a_hostile_line(ledger_db: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "ev"
    assert warden(tmp_path, "audit", "export", str(out), **ledger_db).code == 0
    lines = (out / "ledger.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"id":2', '"id":"2"')
    lines.append("}{")
    (out / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    r = warden(tmp_path, "audit", "verify", "--export", str(out))
    assert r.code == 1, r.text
    assert 'line 2: "id" must be an integer, not a string ("2")' in r.err
    assert "line 7: not valid JSON" in r.err
    assert "Traceback" not in r.text
