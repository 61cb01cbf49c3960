"""The one source of "now".

Everything that reads the time takes a ``Clock`` so tests and the sandbox can move
time (a 30-day campaign in seconds) without patching the standard library.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """Wall-clock time, timezone-aware UTC."""

    def now(self) -> dt.datetime:
        return utcnow()


class ManualClock:
    """Virtual time for tests and the sandbox: real time runs on top of an offset.

    ``frozen=True`` stops time entirely; otherwise time keeps flowing from the
    moment the clock was made, shifted by every ``advance``.
    """

    def __init__(self, start: dt.datetime | None = None, *, frozen: bool = False) -> None:
        self._frozen = frozen
        self._anchor_real = utcnow()
        self._anchor_virtual = start or self._anchor_real

    def now(self) -> dt.datetime:
        if self._frozen:
            return self._anchor_virtual
        return self._anchor_virtual + (utcnow() - self._anchor_real)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        self._anchor_virtual += delta
        return self.now()

    def set(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("clock times must be timezone-aware")
        self._anchor_real = utcnow()
        self._anchor_virtual = when
