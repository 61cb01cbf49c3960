"""Bursts: many events of one kind by one actor, told in one narrative.

A raid adding twenty webhooks is twenty decisions (twenty ledger entries, each acted
on at once) but should not be twenty embeds. :class:`BurstTracker` lets the first
``threshold`` events of a burst be narrated individually — the first one is told as
fast as it is decided — and folds the rest into one :class:`BurstSummary` emitted
when the burst has been quiet for ``window``. Event times come from the audit-log
entry ids, so a catch-up of old entries groups them as they happened.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from bot.audit.decision import BurstSummary
from bot.audit.events import AuditEvent

BurstKey = tuple[int, int | None, str]


@dataclass
class _Burst:
    first_at: dt.datetime
    last_at: dt.datetime
    count: int = 0
    folded: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rules: dict[str, None] = field(default_factory=dict)
    entry_ids: list[int] = field(default_factory=list)


class BurstTracker:
    def __init__(self, window: dt.timedelta = dt.timedelta(seconds=10), threshold: int = 1) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1: the first event of a burst is always told")
        self.window = window
        self.threshold = threshold
        self._bursts: dict[BurstKey, _Burst] = {}

    def observe(
        self, event: AuditEvent, outcome: str, rule: str, at: dt.datetime
    ) -> tuple[bool, list[BurstSummary]]:
        """Count one decided event. Returns (narrate it individually?, bursts this event closed)."""
        assert event.guild_id is not None
        key: BurstKey = (event.guild_id, event.actor_id, event.action)
        closed: list[BurstSummary] = []
        burst = self._bursts.get(key)
        if burst is not None and at - burst.last_at > self.window:
            closed += self._close(key, burst)
            burst = None
        if burst is None:
            burst = self._bursts[key] = _Burst(first_at=at, last_at=at)
        burst.count += 1
        burst.last_at = max(burst.last_at, at)
        burst.outcomes[outcome] += 1
        burst.rules[rule] = None
        narrate = burst.count <= self.threshold
        if not narrate:
            burst.folded += 1
            burst.entry_ids.append(event.entry_id)
        return narrate, closed

    def due(self, now: dt.datetime) -> list[BurstSummary]:
        """Summaries of bursts quiet for longer than the window (the caller records them)."""
        out: list[BurstSummary] = []
        for key, burst in list(self._bursts.items()):
            if now - burst.last_at > self.window:
                out += self._close(key, burst)
        return out

    def flush(self) -> list[BurstSummary]:
        out: list[BurstSummary] = []
        for key, burst in list(self._bursts.items()):
            out += self._close(key, burst)
        return out

    def _close(self, key: BurstKey, burst: _Burst) -> list[BurstSummary]:
        del self._bursts[key]
        if not burst.folded:
            return []
        guild_id, actor_id, action = key
        return [
            BurstSummary(
                guild_id=guild_id,
                actor_id=actor_id,
                action=action,
                count=burst.count,
                first_at=burst.first_at,
                last_at=burst.last_at,
                outcomes=dict(burst.outcomes),
                rules=tuple(burst.rules),
                entry_ids=tuple(burst.entry_ids),
            )
        ]
