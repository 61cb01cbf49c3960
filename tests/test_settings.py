import logging
from pathlib import Path

import pytest

from bot.policy import parse_policy
from bot.settings import Settings, SettingsError, load_settings, redact_url

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GsEcReT.do-not-print-me"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("WARDEN_"):
            monkeypatch.delenv(name)


def policy_with(**warden):
    return parse_policy(
        {"guild": {"acme": {"approvals_channel": "a", "governance_channel": "g"}}, "warden": warden}
    )


def test_defaults():
    s = Settings()
    assert s.token is None and s.token_file is None
    assert s.config == Path("config.toml")
    assert s.log_level == "INFO"
    assert s.resolved_database_url(None) == "sqlite+aiosqlite:///warden.db"
    assert s.resolved_signing_key(None) == Path("warden-signing.key")


def test_env_parsing(monkeypatch, tmp_path):
    monkeypatch.setenv("WARDEN_TOKEN", TOKEN)
    monkeypatch.setenv("WARDEN_CONFIG", str(tmp_path / "c.toml"))
    monkeypatch.setenv("WARDEN_DATABASE_URL", "postgresql://w:pw@db/warden")
    monkeypatch.setenv("WARDEN_DISCORD_API_URL", "http://127.0.0.1:8080/api/v10")
    monkeypatch.setenv("WARDEN_DISCORD_GATEWAY_URL", "ws://127.0.0.1:8080/")
    monkeypatch.setenv("WARDEN_SIGNING_KEY", "/keys/w.key")
    monkeypatch.setenv("WARDEN_LOG_LEVEL", "debug")
    s = Settings()
    assert s.bot_token() == TOKEN
    assert s.config == tmp_path / "c.toml"
    assert s.discord_api_url == "http://127.0.0.1:8080/api/v10"
    assert s.discord_gateway_url == "ws://127.0.0.1:8080/"
    assert s.signing_key == Path("/keys/w.key")
    assert s.log_level == "DEBUG"
    assert s.resolved_database_url(None) == "postgresql+asyncpg://w:pw@db/warden"


def test_empty_env_is_unset(monkeypatch):
    monkeypatch.setenv("WARDEN_TOKEN", "")
    with pytest.raises(SettingsError, match="no bot token: set WARDEN_TOKEN or WARDEN_TOKEN_FILE"):
        Settings().bot_token()


def test_token_file(monkeypatch, tmp_path):
    f = tmp_path / "token"
    f.write_text(f"  {TOKEN}\n")
    monkeypatch.setenv("WARDEN_TOKEN_FILE", str(f))
    assert Settings().bot_token() == TOKEN


def test_token_file_problems(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        Settings(token_file=tmp_path / "missing").bot_token()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings(token_file=empty).bot_token()


def test_no_token():
    with pytest.raises(SettingsError) as e:
        Settings().bot_token()
    assert str(e.value) == "no bot token: set WARDEN_TOKEN or WARDEN_TOKEN_FILE"


def test_both_token_sources_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("WARDEN_TOKEN", TOKEN)
    monkeypatch.setenv("WARDEN_TOKEN_FILE", str(tmp_path / "t"))
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert "set only one of WARDEN_TOKEN and WARDEN_TOKEN_FILE" in str(e.value)
    assert TOKEN not in str(e.value)


def test_token_never_shown(monkeypatch, caplog):
    monkeypatch.setenv("WARDEN_TOKEN", TOKEN)
    s = Settings()
    assert TOKEN not in repr(s)
    assert TOKEN not in str(s)
    assert TOKEN not in repr(s.token) and TOKEN not in str(s.token)
    assert TOKEN not in s.model_dump_json()
    assert TOKEN not in f"{s!r} {s}"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("warden.test").info("settings: %s %r", s, s)
    assert TOKEN not in caplog.text
    assert s.bot_token() == TOKEN


def test_token_never_in_errors(monkeypatch):
    monkeypatch.setenv("WARDEN_TOKEN", TOKEN)
    monkeypatch.setenv("WARDEN_DISCORD_API_URL", "ftp://nope")
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert "WARDEN_DISCORD_API_URL: 'ftp://nope' must be an http(s) URL" in str(e.value)
    assert TOKEN not in str(e.value) and TOKEN not in repr(e.value)


def test_database_password_hidden_in_repr():
    s = Settings(database_url="postgresql+asyncpg://warden:hunter2@db/warden")
    assert "hunter2" not in repr(s)
    assert s.resolved_database_url(None) == "postgresql+asyncpg://warden:hunter2@db/warden"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8080/api/v10", "http://127.0.0.1:8080/api/v10"),
        ("http://127.0.0.1:8080/api/v10/", "http://127.0.0.1:8080/api/v10"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api/v10"),
        ("https://sandbox.example/", "https://sandbox.example/api/v10"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080/api/v10"),
    ],
)
def test_api_url(given, expected):
    assert Settings(discord_api_url=given).discord_api_url == expected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("discord_api_url", "ws://127.0.0.1:8080", "must be an http(s) URL"),
        ("discord_api_url", "http://127.0.0.1:8080/api/v9", "must end with /api/v10"),
        ("discord_gateway_url", "http://127.0.0.1:8080/", "must be a ws(s) URL"),
        ("log_level", "loud", "is not a log level"),
    ],
)
def test_bad_values(field, value, message):
    with pytest.raises(SettingsError) as e:
        load_settings(**{field: value})
    assert str(e.value).startswith(f"WARDEN_{field.upper()}: ")
    assert message in str(e.value)


def test_gateway_url_wss():
    assert Settings(discord_gateway_url="wss://gw.example/").discord_gateway_url == "wss://gw.example/"


def test_database_url_precedence():
    policy = policy_with(database_url="sqlite:///from-policy.db")
    assert Settings().resolved_database_url(policy) == "sqlite+aiosqlite:///from-policy.db"
    env = Settings(database_url="postgres://u@h/db")
    assert env.resolved_database_url(policy) == "postgresql+asyncpg://u@h/db"
    assert Settings().resolved_database_url(policy_with()) == "sqlite+aiosqlite:///warden.db"


def test_database_url_unsupported():
    with pytest.raises(SettingsError, match="database 'mysql' is not supported"):
        Settings(database_url="mysql://u:pw@h/db").resolved_database_url(None)
    with pytest.raises(SettingsError) as e:
        Settings(database_url="u:secretpw@nowhere").resolved_database_url(None)
    assert "is not a database URL" in str(e.value)


def test_signing_key_and_log_level_precedence(monkeypatch):
    policy = policy_with(signing_key_path="policy.key", log_level="warning")
    assert Settings().resolved_signing_key(policy) == Path("policy.key")
    assert Settings(signing_key=Path("env.key")).resolved_signing_key(policy) == Path("env.key")
    assert Settings().resolved_log_level(policy) == "WARNING"
    monkeypatch.setenv("WARDEN_LOG_LEVEL", "error")
    assert Settings().resolved_log_level(policy) == "ERROR"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+asyncpg://warden:s3cret@db:5432/warden",
            "postgresql+asyncpg://warden:***@db:5432/warden",
        ),
        ("postgresql://warden:p@ss@db/w", "postgresql://warden:***@db/w"),
        ("postgresql://db/w?user=a&password=s3cret", "postgresql://db/w?user=a&password=***"),
        ("postgresql://warden@db/w", "postgresql://warden@db/w"),
        ("sqlite+aiosqlite:///warden.db", "sqlite+aiosqlite:///warden.db"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_scheduled_checkpoints_are_read_from_the_environment(monkeypatch, tmp_path) -> None:
    from bot.settings import load_settings

    monkeypatch.setenv("WARDEN_CHECKPOINT_PATH", str(tmp_path / "cps"))
    monkeypatch.setenv("WARDEN_CHECKPOINT_SECONDS", "600")
    settings = load_settings()
    assert settings.checkpoint_path == tmp_path / "cps" and settings.checkpoint_seconds == 600
