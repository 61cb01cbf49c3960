"""What the audit report says, computed from ledger entries alone.

The input is the ledger's own records (``bot.ledger.iter_entries`` rows or parsed
export lines), so every number in the report can be traced to signed entries. Proof
keys follow the services' conventions: ``request``/``grant`` ids, ``requester``,
``subject``, ``approver``, ``votes`` (``{"approver", "approve", "at"}``), ``reason``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from bot.controls import ControlMap
from bot.values import from_attributes

GRANT_OUTCOMES = ("granted",)
APPROVAL_OUTCOMES = ("approved", "auto-approved")
# Decisions where a control did not hold: access not applied or not removed, a guard rule fired.
FAILED_OUTCOMES = ("failed", "removal-stuck", "blocked", "alert")

# How services start a reason with the actor's display name ("alice asked for …"); used only to
# label ids with a readable name, never to decide anything.
_NAME_PATTERNS = (
    re.compile(r"^(?P<name>.+?) asked (?:for|to extend) "),
    re.compile(r"^(?P<name>.+?) (?:approved|denied) request #\d+"),
    re.compile(r"^(?P<name>.+?) used break-glass on "),
    re.compile(r"^(?P<name>.+?) reviewed break-glass grant #\d+"),
    re.compile(r"^(?P<name>.+?) revoked grant #\d+"),
    re.compile(r"^(?P<name>.+?) withdrew request #\d+"),
)


def as_utc(value: Any) -> dt.datetime | None:
    """A ledger time (datetime or ISO 8601 string) as aware UTC; None if absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Entry:
    """One ledger entry as the report reads it."""

    id: int
    at: dt.datetime
    guild_id: int | None
    outcome: str
    rule: str
    reason: str
    proof: Mapping[str, Any]
    controls: tuple[str, ...]
    actor_id: int | None
    request_id: int | None
    grant_id: int | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Entry:
        proof = record.get("proof") if isinstance(record.get("proof"), Mapping) else {}
        at = as_utc(record.get("created_at"))
        if at is None:
            raise ValueError(f"ledger entry {record.get('id')} has no readable created_at")
        return cls(
            id=int(record["id"]),
            at=at,
            guild_id=_int(record.get("guild_id")),
            outcome=str(record.get("outcome", "")),
            rule=str(record.get("rule", "")),
            reason=str(record.get("reason", "")),
            proof=proof or {},
            controls=tuple(str(c) for c in record.get("controls") or ()),
            actor_id=_int(record.get("actor_id")),
            request_id=_int(record.get("request_id")) or _int((proof or {}).get("request")),
            grant_id=_int(record.get("grant_id")) or _int((proof or {}).get("grant")),
        )

    @property
    def scope(self) -> str:
        return str(self.proof.get("scope") or "")

    @property
    def entry_id(self) -> int:
        """Its id, under the name every row drawn from an entry uses (the Entry column)."""
        return self.id


@dataclass(frozen=True, kw_only=True)
class _FromEntry:
    """A row drawn from one ledger entry: its id and time, and whatever else it names alike."""

    entry_id: int
    at: dt.datetime
    scope: str

    @classmethod
    def of(cls, e: Entry, **facts: Any) -> Self:
        """The row for ``e``; each field not in ``facts`` is the entry's own of that name."""
        return from_attributes(cls, e, entry_id=e.id, **facts)


@dataclass(frozen=True, kw_only=True)
class Vote(_FromEntry):
    approver_id: int | None
    approve: bool
    request_id: int | None
    requester_id: int | None
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class Approval(_FromEntry):
    """A request decided in favour: who asked, who approved, and how long it took."""

    outcome: str
    request_id: int | None
    grant_id: int | None
    requester_id: int | None
    subject_id: int | None
    approver_ids: tuple[int, ...]
    requested_at: dt.datetime | None
    reason: str

    @property
    def latency(self) -> dt.timedelta | None:
        return None if self.requested_at is None else self.at - self.requested_at


@dataclass(frozen=True, kw_only=True)
class BreakGlass(_FromEntry):
    grant_id: int | None
    user_id: int | None
    reason: str
    reviewed_by: int | None = None
    reviewed_at: dt.datetime | None = None

    @property
    def review_delay(self) -> dt.timedelta | None:
        return None if self.reviewed_at is None else self.reviewed_at - self.at


@dataclass(frozen=True, kw_only=True)
class Ending(_FromEntry):
    """A grant that ended: expired at its time, or revoked early."""

    outcome: str
    grant_id: int | None
    subject_id: int | None
    by_id: int | None
    note: str


@dataclass(frozen=True)
class ControlCoverage:
    id: str
    framework: str
    title: str
    entries: int
    last_at: dt.datetime | None
    in_map: bool = True


@dataclass
class ReportData:
    since: dt.datetime | None
    until: dt.datetime | None
    entries: list[Entry]
    outcomes: Counter[str]
    grants: list[Entry]
    approvals: list[Approval]
    votes: list[Vote]
    breakglass: list[BreakGlass]
    endings: list[Ending]
    failed: list[Entry]
    coverage: list[ControlCoverage]
    names: dict[int, str] = field(default_factory=dict)
    # Why each request was made (the requester's own words, from its "requested" entry).
    request_reasons: dict[int, str] = field(default_factory=dict)
    total_entries: int = 0

    def request_reason(self, request_id: int | None) -> str:
        return self.request_reasons.get(request_id, "") if request_id is not None else ""

    def name(self, user_id: int | None) -> str:
        if user_id is None:
            return "Warden"
        known = self.names.get(user_id)
        return f"{known} ({user_id})" if known else str(user_id)

    @property
    def latencies(self) -> list[float]:
        """Seconds from request to approval, for requests decided by votes (not auto-approved)."""
        return [
            a.latency.total_seconds()
            for a in self.approvals
            if a.latency is not None and a.outcome == "approved"
        ]

    def latency_summary(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {}
        p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
        return {"median": statistics.median(values), "p90": p90, "max": values[-1]}

    def approvers(self) -> list[tuple[int | None, int, int]]:
        """(approver id, approvals, denials), most active first."""
        yes: Counter[int | None] = Counter(v.approver_id for v in self.votes if v.approve)
        no: Counter[int | None] = Counter(v.approver_id for v in self.votes if not v.approve)
        people = set(yes) | set(no)
        return sorted(((p, yes[p], no[p]) for p in people), key=lambda r: (-(r[1] + r[2]), str(r[0])))

    def unreviewed(self) -> list[BreakGlass]:
        return [b for b in self.breakglass if b.reviewed_at is None]


def _names(entries: Iterable[Entry]) -> dict[int, str]:
    names: dict[int, str] = {}
    for entry in entries:
        if entry.actor_id is None:
            continue
        for pattern in _NAME_PATTERNS:
            match = pattern.match(entry.reason)
            if match:
                names[entry.actor_id] = match["name"][:100]
                break
    return names


def build_data(
    records: Iterable[Mapping[str, Any]],
    controls: ControlMap,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> ReportData:
    """Everything the report shows, for decisions taken in ``[since, until)`` (None: unbounded).

    All entries are read (an approval in the period may answer a request made before
    it); only those in the period are counted.
    """
    every = [Entry.from_record(r) for r in records]
    in_period = [e for e in every if (since is None or e.at >= since) and (until is None or e.at < until)]

    requested_at: dict[int, dt.datetime] = {}
    reviews: dict[int, Entry] = {}
    for e in every:
        if e.outcome == "requested" and e.request_id is not None:
            requested_at.setdefault(e.request_id, e.at)
        if e.outcome == "reviewed" and e.grant_id is not None:
            reviews.setdefault(e.grant_id, e)

    approvals: list[Approval] = []
    votes: list[Vote] = []
    breakglass: list[BreakGlass] = []
    endings: list[Ending] = []
    for e in in_period:
        p = e.proof
        if e.outcome in APPROVAL_OUTCOMES:
            approver_ids = tuple(
                a
                for v in p.get("votes") or ()
                if isinstance(v, Mapping) and v.get("approve") and (a := _int(v.get("approver"))) is not None
            )
            approvals.append(
                Approval.of(
                    e,
                    requester_id=_int(p.get("requester")),
                    subject_id=_int(p.get("subject")),
                    approver_ids=approver_ids,
                    requested_at=requested_at.get(e.request_id) if e.request_id is not None else None,
                )
            )
        elif e.outcome == "voted":
            votes.append(
                Vote.of(
                    e,
                    approver_id=_int(p.get("approver")) or e.actor_id,
                    approve=bool(p.get("approve")),
                    requester_id=None,
                    reason=str(p["reason"]) if p.get("reason") else None,
                )
            )
        elif e.outcome == "break-glass":
            review = reviews.get(e.grant_id) if e.grant_id is not None else None
            breakglass.append(
                BreakGlass.of(
                    e,
                    user_id=_int(p.get("requester")) or e.actor_id,
                    reviewed_by=(_int(review.proof.get("reviewed_by")) or review.actor_id)
                    if review
                    else None,
                    reviewed_at=review.at if review else None,
                )
            )
        elif e.outcome in ("expired", "revoked"):
            endings.append(
                Ending.of(
                    e,
                    subject_id=_int(p.get("subject")),
                    by_id=_int(p.get("revoked_by")) if e.outcome == "revoked" else None,
                    note=str(p.get("reason") or "") if e.outcome == "revoked" else "reached its end time",
                )
            )

    # Requesters of voted-on requests, for the "who approved what" table.
    requester_of = {
        e.request_id: _int(e.proof.get("requester"))
        for e in every
        if e.outcome == "requested" and e.request_id is not None
    }
    scope_of = {e.request_id: e.scope for e in every if e.request_id is not None and e.scope}
    votes = [
        dataclasses.replace(
            v,
            requester_id=requester_of.get(v.request_id) if v.request_id is not None else None,
            scope=v.scope or (scope_of.get(v.request_id, "") if v.request_id is not None else ""),
        )
        for v in votes
    ]

    return ReportData(
        since=since,
        until=until,
        entries=in_period,
        outcomes=Counter(e.outcome for e in in_period),
        grants=[e for e in in_period if e.outcome in GRANT_OUTCOMES],
        approvals=approvals,
        votes=votes,
        breakglass=breakglass,
        endings=endings,
        failed=[e for e in in_period if e.outcome in FAILED_OUTCOMES],
        coverage=coverage(in_period, controls),
        names=_names(every),
        request_reasons={
            e.request_id: str(e.proof.get("reason") or "")
            for e in every
            if e.outcome == "requested" and e.request_id is not None
        },
        total_entries=len(every),
    )


def coverage(entries: Iterable[Entry], controls: ControlMap) -> list[ControlCoverage]:
    """Every control in the map with how many entries evidence it; then any the map does not declare."""
    counts: Counter[str] = Counter()
    last: dict[str, dt.datetime] = {}
    for e in entries:
        for cid in dict.fromkeys(e.controls):
            counts[cid] += 1
            if cid not in last or e.at > last[cid]:
                last[cid] = e.at
    rows = [
        ControlCoverage(c.id, c.framework, c.title, counts[c.id], last.get(c.id))
        for c in controls.controls.values()
    ]
    rows += [
        ControlCoverage(cid, "", "not in the control map", counts[cid], last.get(cid), in_map=False)
        for cid in sorted(counts)
        if not controls.known(cid)
    ]
    return rows
