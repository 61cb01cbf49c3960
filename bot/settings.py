"""Process settings from the environment (``WARDEN_*``), separate from the policy.

Secrets live here, never in ``config.toml``: the bot token comes from
``WARDEN_TOKEN`` or from the file named by ``WARDEN_TOKEN_FILE``. The token is a
:class:`~pydantic.SecretStr`; it never appears in ``repr``, ``str``, logs or error
messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from bot.policy import Policy

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_SIGNING_KEY",
    "Settings",
    "SettingsError",
    "database_url_problem",
    "health_host_problem",
    "load_settings",
    "redact_url",
]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///warden.db"
DEFAULT_SIGNING_KEY = Path("warden-signing.key")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class SettingsError(Exception):
    """A setting that cannot be used; the message names the variable and never holds a secret."""


def redact_url(url: str) -> str:
    """Hide the password in a URL (``user:***@host``, ``?password=***``) for logs."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)$", url, re.DOTALL)
    if match:
        scheme, netloc, rest = match.groups()
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        url = scheme + netloc + rest
    return re.sub(r"(?i)([?&](?:password|pass|pwd)=)[^&#]*", r"\1***", url)


_SUPPORTED = (
    f'SQLite (e.g. "{DEFAULT_DATABASE_URL}") or PostgreSQL (e.g. "postgresql+asyncpg://warden@db/warden")'
)


def database_url_problem(url: str) -> str | None:
    """Why Warden cannot use this database URL (one line, password hidden), or None if it can."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return f"'{redact_url(url)}' is not a database URL; Warden supports {_SUPPORTED}"
    if scheme.lower() not in _DRIVERS:
        return f"database '{scheme}' is not supported; Warden supports {_SUPPORTED}"
    if _DRIVERS[scheme.lower()].startswith("sqlite"):
        path, _, query = rest.partition("?")
        if path.lstrip("/") in ("", ":memory:") or "mode=memory" in query:
            return (
                f"'{redact_url(url)}' is an in-memory database, which would lose every grant and the "
                f"ledger on restart; Warden supports {_SUPPORTED}"
            )
    return None


def _normalise_database_url(url: str, where: str) -> str:
    problem = database_url_problem(url)
    if problem is not None:
        raise SettingsError(f"{where}: {problem}")
    scheme, _, rest = url.strip().partition("://")
    return f"{_DRIVERS[scheme.lower()]}://{rest}"


def health_host_problem(host: str) -> str | None:
    """Why the health endpoint cannot listen on this host, or None."""
    text = host.strip()
    if not text or (any(c in text for c in "/ :") and not _is_ipv6(text)):
        return f"'{host}' is not a host name or IP address; e.g. 127.0.0.1 (the default) or 0.0.0.0"
    return None


def _is_ipv6(text: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(text.strip("[]")).version == 6
    except ValueError:
        return False


class Settings(BaseSettings):
    """Environment settings; every field is read from ``WARDEN_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="WARDEN_", env_ignore_empty=True, extra="ignore")

    token: SecretStr | None = None
    token_file: Path | None = None
    config: Path = Path("config.toml")
    database_url: str | None = None
    discord_api_url: str | None = None
    discord_gateway_url: str | None = None
    signing_key: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    # The optional health/metrics endpoint: off unless a port is set.
    health_port: int | None = None
    health_host: str | None = None
    # Gateway sharding: this process runs these shard ids out of shard_count (see docs/operations.md).
    shards: Annotated[tuple[int, ...] | None, NoDecode] = None
    shard_count: int | None = None
    # Scheduled ledger checkpoints: where to write them (a directory, or a file) and how often.
    checkpoint_path: Path | None = None
    checkpoint_seconds: float = 3600.0
    # Reliability testing only (docs/reliability.md): override Tuning's timings ("sweep_seconds=1,
    # claim_seconds=3") and name a kill point at which the process SIGKILLs itself.
    tuning: Annotated[dict[str, str], NoDecode] = {}
    kill_at: str | None = None

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "database_url" and isinstance(value, str) else value)

    @field_validator("discord_api_url")
    @classmethod
    def _api_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        url = v.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"'{v}' must be an http(s) URL, e.g. http://127.0.0.1:8080/api/v10")
        if re.search(r"/api/v\d+$", parts.path):
            if not parts.path.endswith("/api/v10"):
                raise ValueError(f"'{v}' must end with /api/v10 (Warden speaks API v10)")
            return url
        if parts.path.endswith("/api"):
            return url + "/v10"
        return url + "/api/v10"

    @field_validator("discord_gateway_url")
    @classmethod
    def _gateway_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        url = v.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"'{v}' must be a ws(s) URL, e.g. ws://127.0.0.1:8080/")
        return url

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().upper() in _LEVELS:
            return v.strip().upper()
        raise ValueError(f"'{v}' is not a log level; use one of: {', '.join(_LEVELS)}")

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("text", "json"):
            return v.strip().lower()
        raise ValueError(f"'{v}' is not a log format; use text or json")

    @field_validator("health_port", mode="before")
    @classmethod
    def _port(cls, v: Any) -> Any:
        if v is None:
            return None
        text = str(v).strip()
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise ValueError(f"'{v}' is not a TCP port; use a number from 1 to 65535, e.g. 9464")
        return int(text)

    @field_validator("health_host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return None
        problem = health_host_problem(v)
        if problem:
            raise ValueError(problem)
        return v.strip()

    @field_validator("shards", mode="before")
    @classmethod
    def _shard_ids(cls, v: Any) -> Any:
        if isinstance(v, str):
            parts = [p.strip() for p in v.split(",")]
            if not all(p.isdigit() for p in parts):
                raise ValueError(f"'{v}' is not a list of shard ids; use e.g. 0,1")
            return tuple(int(p) for p in parts)
        return v

    @field_validator("tuning", mode="before")
    @classmethod
    def _tuning(cls, v: Any) -> Any:
        if isinstance(v, str):
            pairs = [p.strip() for p in v.split(",") if p.strip()]
            if not all(p.count("=") == 1 for p in pairs):
                raise ValueError(
                    f"'{v}' is not a list of name=value; use e.g. sweep_seconds=1,claim_seconds=3"
                )
            return {name.strip(): value.strip() for name, value in (p.split("=") for p in pairs)}
        return v

    @field_validator("shard_count")
    @classmethod
    def _shard_count(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be at least 1, not {v}")
        return v

    @model_validator(mode="after")
    def _one_token_source(self) -> Settings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set only one of WARDEN_TOKEN and WARDEN_TOKEN_FILE, not both")
        return self

    @model_validator(mode="after")
    def _shards_within_count(self) -> Settings:
        if self.shards is None:
            return self
        if self.shard_count is None:
            raise ValueError(
                "WARDEN_SHARDS needs WARDEN_SHARD_COUNT (--shard-count): the total number of shards"
            )
        wrong = sorted({s for s in self.shards if s >= self.shard_count})
        if wrong:
            raise ValueError(
                f"WARDEN_SHARDS: shard id(s) {', '.join(map(str, wrong))} not below the shard count "
                f"{self.shard_count}; shard ids run from 0 to {self.shard_count - 1}"
            )
        if len(set(self.shards)) != len(self.shards):
            raise ValueError("WARDEN_SHARDS: a shard id is listed twice")
        return self

    def shard_ids(self) -> list[int] | None:
        """The shards this process runs (None: not sharded, one process for everything)."""
        if self.shard_count is None:
            return None
        return sorted(self.shards) if self.shards is not None else list(range(self.shard_count))

    def bot_token(self) -> str:
        """The bot token, from ``WARDEN_TOKEN`` or the file in ``WARDEN_TOKEN_FILE`` (stripped)."""
        if self.token is not None:
            value = self.token.get_secret_value().strip()
            if value:
                return value
        elif self.token_file is not None:
            try:
                value = self.token_file.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise SettingsError(f"WARDEN_TOKEN_FILE: {self.token_file} does not exist") from None
            except (OSError, UnicodeDecodeError) as e:
                reason = getattr(e, "strerror", None) or type(e).__name__
                raise SettingsError(
                    f"WARDEN_TOKEN_FILE: {self.token_file} cannot be read ({reason})"
                ) from None
            if value:
                return value
            raise SettingsError(f"WARDEN_TOKEN_FILE: {self.token_file} is empty")
        raise SettingsError("no bot token: set WARDEN_TOKEN or WARDEN_TOKEN_FILE")

    def resolved_database_url(self, policy: Policy | None) -> str:
        """``WARDEN_DATABASE_URL``, else ``[warden].database_url``, else the SQLite default.

        ``sqlite://`` and ``postgresql://`` are given their async drivers.
        """
        if self.database_url:
            return _normalise_database_url(self.database_url, "WARDEN_DATABASE_URL")
        if policy is not None and policy.runtime.database_url:
            return _normalise_database_url(policy.runtime.database_url, "warden.database_url")
        return DEFAULT_DATABASE_URL

    def resolved_signing_key(self, policy: Policy | None) -> Path:
        """``WARDEN_SIGNING_KEY``, else ``[warden].signing_key_path``, else ``warden-signing.key``."""
        if self.signing_key is not None:
            return self.signing_key
        if policy is not None and policy.runtime.signing_key_path is not None:
            return policy.runtime.signing_key_path
        return DEFAULT_SIGNING_KEY

    def resolved_log_level(self, policy: Policy | None) -> str:
        """``WARDEN_LOG_LEVEL`` if set, else ``[warden].log_level``, else INFO."""
        if "log_level" in self.model_fields_set or policy is None:
            return self.log_level
        return policy.runtime.log_level

    def resolved_log_format(self, policy: Policy | None) -> str:
        """``WARDEN_LOG_FORMAT`` if set, else ``[warden].log_format``, else text."""
        if "log_format" in self.model_fields_set or policy is None:
            return self.log_format
        return policy.runtime.log_format

    def resolved_health(self, policy: Policy | None) -> tuple[str, int] | None:
        """(host, port) for the health endpoint, or None when it is off (the default).

        ``WARDEN_HEALTH_PORT`` / ``WARDEN_HEALTH_HOST`` win over ``[warden].health_port`` /
        ``health_host``; the host defaults to 127.0.0.1 so metrics are not exposed by accident.
        """
        runtime = policy.runtime if policy is not None else None
        port = self.health_port or (runtime.health_port if runtime else None)
        if not port:
            return None
        host = self.health_host or (runtime.health_host if runtime else None) or "127.0.0.1"
        return host, port


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; raise :class:`SettingsError` with one readable line per problem."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        lines = []
        for err in e.errors(include_url=False):
            field = str(err["loc"][0]) if err["loc"] else ""
            name = f"WARDEN_{field.upper()}" if field else "settings"
            message = str((err.get("ctx") or {}).get("error", err["msg"]))
            if field == "token":  # never echo anything derived from the token
                message = "is not valid"
            lines.append(f"{name}: {message}")
        raise SettingsError("\n".join(lines)) from None
