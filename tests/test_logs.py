"""bot/logs.py: every `extra=` field is printed, in text and in JSON; secret-named fields never."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import FieldsFormatter, JsonFormatter, configure_logging


def _record(msg: str = "decision %s recorded", *args: object, exc: bool = False, **extra: object):
    logger = logging.getLogger("warden.test")
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    return logger.makeRecord("warden.test", logging.INFO, __file__, 1, msg, args, exc_info, extra=extra)


def test_text_prints_every_extra_field() -> None:
    fmt = FieldsFormatter("%(levelname)s %(name)s: %(message)s")
    line = fmt.format(_record("x %s", 1, ledger_entry_id=7, subject_id=42, guild_id=3, request_id=None))
    assert line == "INFO warden.test: x 1 ledger_entry_id=7 subject_id=42 guild_id=3"


def test_text_quotes_values_with_spaces_and_keeps_fields_before_the_traceback() -> None:
    fmt = FieldsFormatter("%(message)s")
    line = fmt.format(_record("failed", exc=True, error="Missing Permissions", grant_id=5))
    first, rest = line.split("\n", 1)
    assert first == 'failed error="Missing Permissions" grant_id=5'
    assert "RuntimeError: boom" in rest


def test_json_is_one_object_per_line_with_every_field() -> None:
    line = JsonFormatter().format(_record("vote %s", "approve", ledger_entry_id=9, subject_id=42, exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert (
        entry["message"] == "vote approve" and entry["level"] == "INFO" and entry["logger"] == "warden.test"
    )
    assert entry["ledger_entry_id"] == 9 and entry["subject_id"] == 42
    assert entry["time"].endswith("+00:00")
    assert "RuntimeError: boom" in entry["exception"]


@pytest.mark.parametrize("fmt", [FieldsFormatter("%(message)s"), JsonFormatter()])
def test_secret_named_fields_are_masked(fmt: logging.Formatter) -> None:
    secret = "MTIz.secret-token-value"
    text = fmt.format(_record("x", token=secret, db_password=secret, signing_key=secret, user_id=1))
    assert secret not in text and "***" in text and "user_id" in text


def test_configure_logging_json(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json")
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("warden").info("hello", extra={"grant_id": 3, "when": object()})
        logging.getLogger("warden").info("second")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["grant_id"] == 3 and first["message"] == "hello" and "object" in first["when"]


def test_a_registered_secret_is_masked_in_every_line_whatever_put_it_there(capsys) -> None:
    import logging

    from bot.logs import configure_logging, redact

    secret = "MTIz.secret-bot-token-value.xyz"
    configure_logging("INFO", "json")
    redact(secret)
    logging.getLogger("discord.http").warning("request failed: Authorization: Bot %s", secret)
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        logging.getLogger("x").exception("with a traceback")
    configure_logging("INFO", "text")
    logging.getLogger("y").info("field", extra={"header": f"Bot {secret}"})
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("***") >= 3
