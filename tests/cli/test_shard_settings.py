"""`--shards` / `--shard-count` and WARDEN_SHARDS / WARDEN_SHARD_COUNT: parsed, checked, explained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from discord.ext import commands

from bot.client import ShardedWardenBot
from bot.clock import SystemClock
from bot.db.session import create_engine, create_session_factory
from bot.ledger import Signer
from bot.policy import load_policy
from bot.settings import SettingsError, load_settings
from bot.wiring import build_bot
from tests.helpers import EXAMPLE, SECRET, warden


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WARDEN_"):
            monkeypatch.delenv(name)


def test_unsharded_by_default() -> None:
    assert load_settings().shard_ids() is None


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_SHARDS", "3, 1")
    monkeypatch.setenv("WARDEN_SHARD_COUNT", "4")
    assert load_settings().shard_ids() == [1, 3]


def test_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_SHARDS", "1")
    monkeypatch.setenv("WARDEN_SHARD_COUNT", "2")
    assert load_settings(shards="0,2", shard_count=3).shard_ids() == [0, 2]


def test_a_count_alone_runs_every_shard() -> None:
    assert load_settings(shard_count=3).shard_ids() == [0, 1, 2]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"shards": "0,4", "shard_count": 4}, "shard id(s) 4 not below the shard count 4"),
        ({"shards": "1"}, "WARDEN_SHARDS needs WARDEN_SHARD_COUNT"),
        (
            {"shards": "one", "shard_count": 2},
            "WARDEN_SHARDS: 'one' is not a list of shard ids; use e.g. 0,1",
        ),
        ({"shards": "-1", "shard_count": 2}, "is not a list of shard ids"),
        ({"shards": "1,1", "shard_count": 2}, "listed twice"),
        ({"shard_count": 0}, "WARDEN_SHARD_COUNT: must be at least 1"),
    ],
)
def test_bad_values_say_what_to_do(given: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**given)
    assert message in str(err.value)


async def test_the_bot_runs_the_configured_shards(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    common = {
        "policy": load_policy(EXAMPLE),
        "clock": SystemClock(),
        "session_factory": create_session_factory(engine),
        "signer": Signer.generate(),
    }
    try:
        plain = build_bot(shard_ids=None, shard_count=None, **common)
        assert not isinstance(plain, commands.AutoShardedBot) and plain.shard_count is None
        sharded = build_bot(shard_ids=[1, 3], shard_count=4, **common)
        assert isinstance(sharded, ShardedWardenBot) and isinstance(sharded, commands.AutoShardedBot)
        assert sharded.shard_ids == [1, 3] and sharded.shard_count == 4
    finally:
        await engine.dispose()


def test_run_refuses_a_shard_outside_the_count(tmp_path: Path) -> None:
    r = warden(
        tmp_path, "run", "--config", str(EXAMPLE), "--shards", "2", "--shard-count", "2", WARDEN_TOKEN=SECRET
    )
    assert r.code == 2, r.text
    assert "shard id(s) 2 not below the shard count 2" in r.err and "Traceback" not in r.text
    assert list(tmp_path.iterdir()) == []  # nothing written: no database, no key
