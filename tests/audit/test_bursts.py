from __future__ import annotations

import datetime as dt

import pytest

from bot.audit.bursts import BurstTracker
from bot.audit.events import event_from_payload
from tests.helpers import ALICE, BOB, PUBLIC_CHANNEL, T0, webhook


def test_twenty_webhooks_are_one_told_event_and_one_summary():
    tracker = BurstTracker(window=dt.timedelta(seconds=10))
    told = []
    for i in range(20):
        narrate, closed = tracker.observe(
            event_from_payload(webhook(PUBLIC_CHANNEL, 100 + i, actor=ALICE)),
            "block",
            "r",
            T0 + dt.timedelta(seconds=i * 0.5),
        )
        told.append(narrate)
        assert closed == []
    assert told == [True] + [False] * 19
    assert tracker.due(T0 + dt.timedelta(seconds=12)) == []  # still within the window of the last one
    (summary,) = tracker.due(T0 + dt.timedelta(seconds=30))
    assert summary.count == 20 and len(summary.entry_ids) == 19 and summary.outcomes == {"block": 20}
    assert "20 webhook create changes" in summary.reason()
    assert tracker.due(T0 + dt.timedelta(seconds=60)) == []


def test_actors_are_separate_bursts_and_a_lone_event_has_no_summary():
    tracker = BurstTracker()
    assert tracker.observe(event_from_payload(webhook(PUBLIC_CHANNEL, actor=ALICE)), "alert", "r", T0)[0]
    assert tracker.observe(event_from_payload(webhook(PUBLIC_CHANNEL, actor=BOB)), "alert", "r", T0)[0]
    assert tracker.flush() == []


def test_a_late_event_closes_the_previous_burst():
    tracker = BurstTracker(window=dt.timedelta(seconds=5))
    for i in range(3):
        tracker.observe(
            event_from_payload(webhook(PUBLIC_CHANNEL, actor=ALICE)),
            "alert",
            "r",
            T0 + dt.timedelta(seconds=i),
        )
    narrate, closed = tracker.observe(
        event_from_payload(webhook(PUBLIC_CHANNEL, actor=ALICE)), "alert", "r", T0 + dt.timedelta(minutes=5)
    )
    assert narrate and len(closed) == 1 and closed[0].count == 3


def test_threshold_must_tell_the_first():
    with pytest.raises(ValueError):
        BurstTracker(threshold=0)
