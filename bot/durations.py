"""Human durations: ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"``, ``"2w"``.

Used by the policy (``max_duration = "8h"``) and by ``/jit request duration:90m``.
Errors say what was wrong and what to write instead, so they can be shown to a
member or a policy author as they are.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["MAX_DURATION", "DurationError", "format_duration", "parse_duration"]

#: Nothing in Warden lasts longer than this; bigger numbers are typos.
MAX_DURATION = dt.timedelta(days=3650)

_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_PART = re.compile(r"(\d+)\s*([a-z]+)")
# Longer text is never a sensible duration; refusing it early also keeps int() away from
# Python's 4,300-digit conversion limit, which raises a bare ValueError.
MAX_TEXT = 64
_HINT = "use a number with s, m, h, d or w, for example 30m, 2h or 1d"


class DurationError(ValueError):
    """A duration that cannot be used; the message is meant for people."""


def parse_duration(text: str, *, allow_zero: bool = False) -> dt.timedelta:
    """Parse ``"1h30m"``-style text (case-insensitive, spaces allowed) into a timedelta.

    Zero is refused unless ``allow_zero`` (used for settings where 0 means "off").
    """
    if isinstance(text, bool) or not isinstance(text, str):
        if isinstance(text, int | float):
            raise DurationError(
                f'{text!r} is not a duration: write it as text with a unit, for example "{text}m"'
            )
        raise DurationError(f"{text!r} is not a duration: {_HINT}")
    original = text if len(text) <= 40 else text[:20] + "…"  # what messages quote back
    s = text.strip().lower()
    if not s:
        raise DurationError(f"a duration is needed: {_HINT}")
    if len(s) > MAX_TEXT:
        raise DurationError(f"'{text[:20]}…' is too long to be a duration: {_HINT}")
    if s.startswith("-"):
        raise DurationError(f"'{original}' must be longer than zero: {_HINT}")
    if s.isdigit():
        raise DurationError(
            f"'{original}' has no unit: write {s}m for minutes, {s}h for hours or {s}d for days"
        )
    seconds = 0
    pos = 0
    seen: set[int] = set()
    for match in _PART.finditer(s):
        if s[pos : match.start()].strip():
            raise DurationError(f"'{original}' is not a duration: {_HINT}")
        number, unit = match.groups()
        factor = _UNITS.get(unit)
        if factor is None:
            raise DurationError(f"'{original}' is not a duration: {_HINT}")
        if factor in seen:
            raise DurationError(f"'{original}' gives the same unit twice: {_HINT}")
        seen.add(factor)
        seconds += int(number) * factor
        pos = match.end()
    if not seen or s[pos:].strip():
        raise DurationError(f"'{original}' is not a duration: {_HINT}")
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(f"'{original}' is too long: the longest duration is 3650d (10 years)")
    if seconds == 0 and not allow_zero:
        raise DurationError(f"'{original}' must be longer than zero, for example 30m or 1h")
    return dt.timedelta(seconds=seconds)


def format_duration(td: dt.timedelta) -> str:
    """Compact, stable text for a duration: ``"1h 30m"``, ``"2d"``, ``"45s"``, ``"0s"``.

    Days are the largest unit (``14d``, not ``2w``); fractions of a second are dropped.
    """
    total = int(td.total_seconds())
    if total < 0:
        return "-" + format_duration(dt.timedelta(seconds=-total))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts) or "0s"


def discord_ts(when: dt.datetime | None, style: str = "f") -> str:
    """A Discord timestamp (``<t:…:f>``) that every reader sees in their own time zone."""
    return f"<t:{int(when.timestamp())}:{style}>" if when else "—"
