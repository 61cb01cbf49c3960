"""Warden's Prometheus metrics, in one registry, and the functions code calls to count things.

Counters and histograms here are process facts (what this process did since it started). Facts
about the database (active grants, removals due, the narrative backlog) are not counted here:
:mod:`bot.health.facts` reads them on every scrape, so they are right after a restart and
across several processes.

Call sites (each one line):

- ``interaction_received(interaction)`` — every interaction (a listener added by
  :func:`instrument_bot`); ``interaction_error(interaction, error)`` — the one error path;
  answers and their latency come from the Discord HTTP trace (:func:`discord_http_trace`).
- ``decision_recorded(outcome)`` — once per ledger decision (requests, votes, grants by outcome).
- ``observe_sweep(seconds, failures)`` — after each scheduler sweep.
- ``database_unavailable()`` — the transaction wrapper, when the database does not answer; other
  database errors come from the engines' ``handle_error`` event (:func:`instrument_databases`).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    import discord

__all__ = [
    "REGISTRY",
    "database_unavailable",
    "decision_recorded",
    "discord_http_trace",
    "instrument_databases",
    "interaction_error",
    "interaction_received",
    "last_sweep_age",
    "observe_sweep",
    "settle_interactions",
]

REGISTRY = CollectorRegistry(auto_describe=True)

INTERACTIONS_RECEIVED = Counter(
    "warden_interactions_received",
    "Interactions received from Discord, by kind",
    ["kind"],
    registry=REGISTRY,
)
INTERACTIONS = Counter(
    "warden_interactions",
    "Interactions by kind and outcome: ok, refused (a rule said no), failed (a bug or outage), "
    "expired (Discord rejected a late answer), unanswered",
    ["kind", "outcome"],
    registry=REGISTRY,
)
ANSWER_SECONDS = Histogram(
    "warden_interaction_answer_seconds",
    "Time from receiving an interaction to Discord accepting Warden's first answer (limit: 3 s)",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0),
    registry=REGISTRY,
)
DECISIONS = Counter(
    "warden_decisions",
    "Ledger decisions recorded by this process, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
REQUESTS = Counter("warden_requests", "Access requests by outcome", ["outcome"], registry=REGISTRY)
VOTES = Counter("warden_votes", "Approver votes recorded", registry=REGISTRY)
GRANTS = Counter("warden_grants", "Grant lifecycle events by outcome", ["outcome"], registry=REGISTRY)
DISCORD_RESPONSES = Counter(
    "warden_discord_http_responses",
    "Discord REST responses by status class (2xx, 4xx, 429, 5xx)",
    ["status"],
    registry=REGISTRY,
)
DISCORD_ERRORS = Counter(
    "warden_discord_http_errors",
    "Discord REST requests that got no response (connection errors, timeouts)",
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "warden_database_errors",
    "Database errors: unavailable (a unit of work failed: no answer), error (any other database error)",
    ["kind"],
    registry=REGISTRY,
)
SWEEP_SECONDS = Histogram(
    "warden_sweep_duration_seconds",
    "Duration of one scheduler sweep (expiry, reminders, pending TTL, narratives)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
SWEEP_FAILURES = Counter(
    "warden_sweep_step_failures", "Sweep steps that failed (they run again next sweep)", registry=REGISTRY
)
LAST_SWEEP = Gauge(
    "warden_last_sweep_timestamp_seconds", "Unix time the last sweep finished", registry=REGISTRY
)

# Ledger outcomes (bot.decisions.service.Outcome values) by what they are about.
_REQUEST_OUTCOMES = {
    "requested",
    "approved",
    "auto-approved",
    "denied",
    "cancelled",
    "request-expired",
    "break-glass",
}
_GRANT_OUTCOMES = {"granted", "extended", "revoked", "expired", "failed", "removal-stuck", "reviewed"}

_last_sweep: float | None = None

# Interactions in flight, by id. An interaction is counted once, with its outcome: "refused" or
# "failed" when it reaches the error path (often after a deferred answer), "expired" when Discord
# rejects the answer, "unanswered" when none came, and "ok" once it was answered and no error
# followed within SETTLE_SECONDS.
SETTLE_SECONDS = 2.0
FORGET_SECONDS = 15 * 60.0  # an interaction token's lifetime
_PENDING_MAX = 4096
_CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")


class _InFlight:
    __slots__ = ("answered_at", "counted", "kind", "started")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.started = time.monotonic()
        self.answered_at: float | None = None
        self.counted = False

    def count(self, outcome: str) -> None:
        if not self.counted:
            self.counted = True
            INTERACTIONS.labels(self.kind, outcome).inc()


_pending: OrderedDict[int, _InFlight] = OrderedDict()


def _kind(interaction: discord.Interaction[Any]) -> str:
    return getattr(interaction.type, "name", str(interaction.type))


def settle_interactions(now: float | None = None) -> None:
    """Count answered interactions no error followed as ok; forget old ones (called on scrape)."""
    now = time.monotonic() if now is None else now
    for iid, item in list(_pending.items()):
        if item.answered_at is not None and now - item.answered_at >= SETTLE_SECONDS:
            item.count("ok")
        if now - item.started >= FORGET_SECONDS:
            item.count("unanswered")
            del _pending[iid]


def interaction_received(interaction: discord.Interaction[Any]) -> None:
    kind = _kind(interaction)
    INTERACTIONS_RECEIVED.labels(kind).inc()
    _pending[interaction.id] = _InFlight(kind)
    while len(_pending) > _PENDING_MAX:
        _pending.popitem(last=False)[1].count("unanswered")


def interaction_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Called by the error path; refusals (WardenError, failed checks) are not failures."""
    from discord import app_commands

    from bot.services.errors import WardenError

    item = _pending.get(interaction.id)
    if item is not None:
        refused = isinstance(error, WardenError | app_commands.CheckFailure)
        item.count("refused" if refused else "failed")


def _interaction_answered(interaction_id: int, status: int | None) -> None:
    item = _pending.get(interaction_id)
    if item is None or item.answered_at is not None:
        return
    item.answered_at = time.monotonic()
    if status is None or status >= 400:
        item.count("expired")
        return
    ANSWER_SECONDS.labels(item.kind).observe(item.answered_at - item.started)


def decision_recorded(outcome: str) -> None:
    """One ledger decision; also counted as a request, vote or grant event by its outcome."""
    value = str(outcome)
    DECISIONS.labels(value).inc()
    if value == "voted":
        VOTES.inc()
    elif value in _REQUEST_OUTCOMES:
        REQUESTS.labels(value).inc()
    if value in _GRANT_OUTCOMES:
        GRANTS.labels(value).inc()


def observe_sweep(seconds: float, failures: int = 0) -> None:
    global _last_sweep
    SWEEP_SECONDS.observe(seconds)
    if failures:
        SWEEP_FAILURES.inc(failures)
    _last_sweep = time.monotonic()
    LAST_SWEEP.set_to_current_time()


def last_sweep_age() -> float | None:
    """Seconds since the last sweep finished, or None if none has yet."""
    return None if _last_sweep is None else time.monotonic() - _last_sweep


def database_unavailable() -> None:
    """A unit of work failed because the database did not answer (the one transaction wrapper)."""
    DATABASE_ERRORS.labels("unavailable").inc()


def _on_database_error(context: Any) -> None:
    # Unreachable databases are counted by database_unavailable(); this counts the rest.
    if not getattr(context, "is_disconnect", False):
        DATABASE_ERRORS.labels("error").inc()


def instrument_databases() -> None:
    """Count every error any engine of this process sees (connect failures included)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "handle_error", _on_database_error):
        event.listen(Engine, "handle_error", _on_database_error)


def _status_class(status: int) -> str:
    if status == 429:
        return "429"
    return f"{status // 100}xx"


async def _on_request_end(
    _session: aiohttp.ClientSession, _ctx: Any, params: aiohttp.TraceRequestEndParams
) -> None:
    status = params.response.status
    DISCORD_RESPONSES.labels(_status_class(status)).inc()
    if params.method == "POST":
        match = _CALLBACK.search(params.url.path)
        if match:
            _interaction_answered(int(match.group(1)), status)


async def _on_request_exception(
    _session: aiohttp.ClientSession, _ctx: Any, params: aiohttp.TraceRequestExceptionParams
) -> None:
    DISCORD_ERRORS.inc()
    if params.method == "POST":
        match = _CALLBACK.search(params.url.path)
        if match:
            _interaction_answered(int(match.group(1)), None)


def discord_http_trace() -> aiohttp.TraceConfig:
    """An aiohttp trace for discord.py's ``http_trace=``: Discord status codes and answer latency."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    trace.on_request_exception.append(_on_request_exception)
    return trace
