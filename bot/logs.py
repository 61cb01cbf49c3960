"""Logging, configured once at start-up: one line per event, with its ids as key=value fields."""

from __future__ import annotations

import logging

# Fields services pass through `extra=`; printed after the message when present.
FIELDS = (
    "guild_id",
    "request_id",
    "grant_id",
    "user_id",
    "entry_id",
    "attempts",
    "error",
    "custom_id",
    "command",
)


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None) is not None]
        return f"{line} {' '.join(extras)}" if extras else line


class _NoVoiceNotice(logging.Filter):
    """Warden never uses voice; discord.py's missing-voice-library warnings are noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_NoVoiceNotice())
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("discord.gateway").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
