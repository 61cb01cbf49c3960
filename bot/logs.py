"""Logging, configured once at start-up: one line per event, with its ids as fields.

Two formats (``WARDEN_LOG_FORMAT`` or ``[warden].log_format``):

- ``text`` (default): ``time level logger: message key=value ...`` — readable in a terminal.
- ``json``: one JSON object per line (``time``, ``level``, ``logger``, ``message``, then every
  field), for log shippers.

Every field a caller passes through ``extra=`` is printed, whatever its name: a fixed list
silently dropped new ids such as ``ledger_entry_id``. Fields whose name says they hold a secret
are printed as ``***``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["LOG_FORMATS", "FieldsFormatter", "JsonFormatter", "configure_logging", "extra_fields"]

LOG_FORMATS = ("text", "json")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_NAME = re.compile(r"(?i)(token|secret|password|passwd|private|signing_key|api_key)")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``extra=`` fields in the order given, secret-named ones masked, ``None`` left out."""
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_") or value is None:
            continue
        out[key] = "***" if _SECRET_NAME.search(key) else value
    return out


def _text(value: Any) -> str:
    text = str(value)
    # A value with spaces or quotes stays one field: quote it as JSON does.
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n\t')) else text


class FieldsFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={_text(v)}" for k, v in extra_fields(record).items())
        if not fields:
            return line
        # Keep the fields on the first line, before any traceback.
        head, sep, tail = line.partition("\n")
        return f"{head} {fields}{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; values JSON cannot hold are written as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry[key if key not in entry else f"extra_{key}"] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _Redact(logging.Formatter):
    """Wraps the formatter: any known secret value is masked in the finished line, whatever put it
    there (a library's message, an exception's text, a field) — the last line of defence."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        for secret in _SECRETS:
            if secret in line:
                line = line.replace(secret, "***")
        return line


# Secret values (the bot token) registered at start-up; short strings are never treated as secrets.
_SECRETS: set[str] = set()


def redact(secret: str | None) -> None:
    """Never print this value: every log line has it masked from now on."""
    if secret and len(secret) >= 8:
        _SECRETS.add(secret)


class _MaskAtSource(logging.Filter):
    """Masks known secrets in the record itself, when it is logged (not when a handler formats it),
    so no handler — whenever and however it formats — ever sees the clear value."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in _SECRETS:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, ()
        return True


# discord.py logs each request body here at DEBUG (a DM's text included).
_BODY_LOGGERS = ("discord.http", "discord.webhook.async_")
_MASK = _MaskAtSource()


@contextlib.contextmanager
def redacting(secret: str) -> Iterator[None]:
    """Mask a short-lived secret (an access token being DM'd) in every log line while it is handled.

    discord.py logs request bodies at DEBUG; a token's one delivery must not reach a log even then.
    """
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)
    added = secret not in _SECRETS
    redact(secret)
    try:
        yield
    finally:
        if added:
            _SECRETS.discard(secret)


class _NoVoiceNotice(logging.Filter):
    """Warden never uses voice; discord.py's missing-voice-library warnings are noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_NoVoiceNotice())
    inner: logging.Formatter
    if fmt == "json":
        inner = JsonFormatter()
    else:
        inner = FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(_Redact(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("discord.gateway").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
