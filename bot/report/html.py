"""The report as one self-contained HTML page: inline CSS, inline SVG, one small inline script.

Every string from the ledger goes through ``esc`` (reasons, notes and names are user
text). A Content-Security-Policy allows no network at all and only this page's own
script (by hash), so even a missed escape could not run injected code or fetch anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.report import charts
from bot.report.model import ReportData, as_utc
from bot.report.template import PAGE, SCRIPT, STYLE


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(delta: dt.timedelta | float | None) -> str:
    if delta is None:
        return ""
    seconds = int(delta.total_seconds() if isinstance(delta, dt.timedelta) else delta)
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    return " ".join(parts) or f"{secs}s"


@dataclass(frozen=True)
class Cell:
    """A table cell: shown text, and an optional sort key (times and numbers sort by value)."""

    text: str
    sort: str | float | None = None
    cls: str = ""


def cell(value: object, sort: str | float | None = None, cls: str = "") -> Cell:
    return Cell("" if value is None else str(value), sort, cls)


def at_cell(value: dt.datetime | None) -> Cell:
    return Cell(when(value), value.timestamp() if value else 0)


def num(value: int | None) -> Cell:
    return Cell("" if value is None else str(value), value if value is not None else -1)


def entry_cells(entry_id: int, at: dt.datetime) -> list[Cell]:
    """The Entry and At columns a row read from one ledger entry starts with."""
    return [num(entry_id), at_cell(at)]


def table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]], empty: str) -> str:
    body = []
    for row in rows:
        tds = []
        for c in row:
            attrs = ""
            if c.sort is not None:
                attrs += f' data-sort="{esc(c.sort)}"'
            if c.cls:
                attrs += f' class="{esc(c.cls)}"'
            tds.append(f"<td{attrs}>{esc(c.text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f'<th scope="col" tabindex="0">{esc(h)}</th>' for h in headers)
    return (
        f'<table class="sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


@dataclass(frozen=True)
class Verification:
    """The ledger's verification, as the report states it."""

    ok: bool
    entries: int
    problems: Sequence[str]
    warnings: Sequence[str]
    key_id: str
    fingerprint: str  # SHA-256 of the raw public key, colon-separated hex
    last_entry_id: int | None
    export_ok: bool | None = None
    export_problems: Sequence[str] = ()


def fingerprint(raw_public_key: bytes) -> str:
    digest = hashlib.sha256(raw_public_key).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _verification(v: Verification) -> str:
    status = "VERIFIED" if v.ok else "FAILED"
    cls = "ok" if v.ok else "bad"
    lines = [
        f'<div class="verdict {cls}" id="verification-result"><strong>Ledger {status}</strong>: '
        f"{v.entries} entries, hash chain and Ed25519 signatures checked"
        + (f" up to entry {esc(v.last_entry_id)}" if v.last_entry_id is not None else "")
        + ".</div>",
        '<dl class="facts">',
        f'<dt>Public key id</dt><dd><code id="key-id">{esc(v.key_id)}</code> '
        "(first 16 hex digits of the SHA-256 of the raw Ed25519 public key)</dd>",
        f'<dt>Public key fingerprint (SHA-256)</dt><dd><code id="key-fingerprint">{esc(v.fingerprint)}</code></dd>',
    ]
    if v.export_ok is not None:
        lines.append(
            "<dt>Export beside this report</dt><dd>"
            + ("verifies from its files alone" if v.export_ok else "<strong>does not verify</strong>")
            + " (<code>ledger.jsonl</code>, <code>head.json</code>, <code>public_key.pem</code>)</dd>"
        )
    lines.append("</dl>")
    problems = list(v.problems) + [f"export: {p}" for p in v.export_problems]
    if problems:
        lines.append('<ul class="problems">' + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul>")
    if v.warnings:
        lines.append('<ul class="warnings">' + "".join(f"<li>{esc(w)}</li>" for w in v.warnings) + "</ul>")
    lines.append(
        "<p>Compare the key id with the one Warden's operator gave you by another channel, then re-check "
        "the export yourself: <code>warden audit verify --export &lt;this directory&gt; --public-key "
        "&lt;key you trust&gt;</code> (or by hand, as its <code>README.txt</code> describes).</p>"
    )
    return "\n".join(lines)


def _summary(d: ReportData) -> str:
    o = d.outcomes
    tiles = [
        ("entries", "Decisions recorded", len(d.entries)),
        ("requests", "Requests", o["requested"]),
        ("grants", "Grants applied", len(d.grants)),
        ("denials", "Denied", o["denied"]),
        ("breakglass", "Break-glass uses", len(d.breakglass)),
        ("unreviewed", "Break-glass not reviewed", len(d.unreviewed())),
        ("expired", "Expired", o["expired"]),
        ("revoked", "Revoked", o["revoked"]),
        ("failed", "Failed controls", len(d.failed) + len(d.unreviewed())),
    ]
    return (
        '<div class="tiles">'
        + "".join(
            f'<div class="tile{" warn" if key in ("unreviewed", "failed") and n else ""}" id="count-{key}">'
            f'<span class="n">{n}</span><span class="label">{esc(label)}</span></div>'
            for key, label, n in tiles
        )
        + "</div>"
    )


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def render(d: ReportData, verification: Verification, *, generated_at: dt.datetime, source: str) -> str:
    period = (
        f"{when(d.since) if d.since else 'the first entry'} to {when(d.until) if d.until else 'the last'}"
    )
    latency = d.latency_summary()
    latency_text = (
        f"<p>Median {esc(duration(latency['median']))}, 90th percentile {esc(duration(latency['p90']))}, "
        f"longest {esc(duration(latency['max']))} over {len(d.latencies)} requests decided by vote "
        f"({sum(1 for a in d.approvals if a.outcome == 'auto-approved')} auto-approved by policy, "
        "not counted).</p>"
        if latency
        else ""
    )

    # Cells more than one ledger table shows; each table names its own columns in order below.
    shared: dict[str, Callable[[Any], Cell]] = {
        "Grant": lambda r: num(r.grant_id),
        "Request": lambda r: num(r.request_id),
        "Scope": lambda r: cell(r.scope),
        "Requester's reason": lambda r: cell(d.request_reason(r.request_id)),
    }

    def ledger_table(
        table_id: str,
        columns: Sequence[str],
        rows: Iterable[Any],
        own: dict[str, Callable[[Any], Cell]],
        empty: str,
    ) -> str:
        """A table whose rows each come from one ledger entry: Entry, then when (``columns[0]``), then
        ``columns[1:]``, each cell the table's ``own`` or a ``shared`` one."""
        cells = [own.get(c) or shared[c] for c in columns[1:]]
        return table(
            table_id,
            ["Entry", *columns],
            ([*entry_cells(r.entry_id, r.at), *(f(r) for f in cells)] for r in rows),
            empty,
        )

    grants_table = ledger_table(
        "grants-table",
        ["Applied", "Grant", "Request", "Scope", "Holder", "Expires", "Requester's reason"],
        d.grants,
        {
            "Holder": lambda e: cell(
                d.name(e.proof.get("subject") if isinstance(e.proof.get("subject"), int) else None)
            ),
            "Expires": lambda e: at_cell(as_utc(e.proof.get("expires_at"))),
        },
        "No grants were applied in this period.",
    )
    approvals_table = ledger_table(
        "approvals-table",
        [
            "Decided",
            "Request",
            "Grant",
            "Scope",
            "Requester",
            "Approved by",
            "How",
            "Latency",
            "Requester's reason",
        ],
        d.approvals,
        {
            "Requester": lambda a: cell(d.name(a.requester_id)),
            "Approved by": lambda a: cell(
                ", ".join(d.name(x) for x in a.approver_ids) or "policy (auto-approved)"
            ),
            "How": lambda a: cell(a.outcome),
            "Latency": lambda a: Cell(duration(a.latency), a.latency.total_seconds() if a.latency else -1),
        },
        "No requests were approved in this period.",
    )
    approvers_table = table(
        "approvers-table",
        ["Approver", "Approvals", "Denials"],
        ([cell(d.name(p)), num(y), num(n)] for p, y, n in d.approvers()),
        "Nobody voted in this period.",
    )
    votes_table = ledger_table(
        "votes-table",
        ["At", "Approver", "Vote", "Request", "Scope", "Requester", "Reason"],
        d.votes,
        {
            "Approver": lambda v: cell(d.name(v.approver_id)),
            "Vote": lambda v: cell("approve" if v.approve else "deny", cls="" if v.approve else "deny"),
            "Requester": lambda v: cell(d.name(v.requester_id) if v.requester_id else ""),
            "Reason": lambda v: cell(v.reason or ""),
        },
        "No votes in this period.",
    )
    breakglass_table = ledger_table(
        "breakglass-table",
        ["Used", "Grant", "Scope", "By", "Reason", "Reviewed by", "Reviewed", "Review after"],
        d.breakglass,
        {
            "By": lambda b: cell(d.name(b.user_id)),
            "Reason": lambda b: cell(b.reason),
            "Reviewed by": lambda b: cell(
                d.name(b.reviewed_by) if b.reviewed_at else "NOT REVIEWED", cls="" if b.reviewed_at else "bad"
            ),
            "Reviewed": lambda b: at_cell(b.reviewed_at),
            "Review after": lambda b: Cell(
                duration(b.review_delay), b.review_delay.total_seconds() if b.review_delay else -1
            ),
        },
        "No break-glass access was used in this period.",
    )
    endings_table = ledger_table(
        "endings-table",
        ["Ended", "How", "Grant", "Scope", "Holder", "By", "Note"],
        d.endings,
        {
            "How": lambda x: cell(x.outcome),
            "Holder": lambda x: cell(d.name(x.subject_id)),
            "By": lambda x: cell(
                d.name(x.by_id) if x.by_id else ("Warden (expiry)" if x.outcome == "expired" else "")
            ),
            "Note": lambda x: cell(x.note),
        },
        "No grants expired or were revoked in this period.",
    )
    failed_rows = [
        [
            *entry_cells(e.id, e.at),
            cell(e.outcome, cls="bad"),
            cell(e.rule),
            cell(e.reason),
            cell(", ".join(e.controls)),
        ]
        for e in d.failed
    ] + [
        [
            *entry_cells(b.entry_id, b.at),
            cell("break-glass not reviewed", cls="bad"),
            cell(f"scope.{b.scope}.breakglass"),
            cell(f"Break-glass grant #{b.grant_id} by {d.name(b.user_id)} has no review in the ledger."),
            cell(""),
        ]
        for b in d.unreviewed()
    ]
    failed_table = table(
        "failed-table",
        ["Entry", "At", "What", "Rule", "Reason", "Controls"],
        sorted(failed_rows, key=lambda r: float(r[1].sort or 0)),
        "No control failed in this period: every grant was applied and removed, every break-glass reviewed.",
    )
    coverage_table = table(
        "coverage-table",
        ["Control", "Framework", "Subject", "Entries", "Last evidenced"],
        (
            [
                cell(c.id),
                cell(c.framework),
                cell(c.title),
                Cell(str(c.entries), c.entries, "" if c.entries else "warn"),
                at_cell(c.last_at),
            ]
            for c in d.coverage
        ),
        "The control map declares no controls.",
    )
    covered = sum(1 for c in d.coverage if c.in_map and c.entries)
    declared = sum(1 for c in d.coverage if c.in_map)
    entries_table = table(
        "entries-table",
        ["Entry", "At", "Outcome", "Rule", "Reason", "Request", "Grant"],
        (
            [
                *entry_cells(e.id, e.at),
                cell(e.outcome),
                cell(e.rule),
                cell(e.reason),
                num(e.request_id),
                num(e.grant_id),
            ]
            for e in d.entries
        ),
        "No entries in this period.",
    )

    body = "\n".join(
        [
            _section("verification", "Ledger verification", _verification(verification)),
            _section(
                "summary", "Summary", _summary(d), f"<figure>{charts.outcomes_bar(d.outcomes)}</figure>"
            ),
            _section(
                "grants",
                "Grants over time",
                f"<figure>{charts.grants_over_time([(e.at, e.scope) for e in d.grants])}</figure>",
                grants_table,
            ),
            _section(
                "latency",
                "Approval latency",
                f"<figure>{charts.latency_histogram(d.latencies)}</figure>",
                latency_text,
            ),
            _section(
                "approvals",
                "Who approved what",
                approvers_table,
                approvals_table,
                "<h3>Every vote</h3>",
                votes_table,
            ),
            _section("breakglass", "Break-glass uses and their reviews", breakglass_table),
            _section("endings", "Expiries and revocations", endings_table),
            _section("failed", "Failed controls", failed_table),
            _section(
                "coverage",
                "Control-map coverage",
                f"<p>{covered} of {declared} controls in the control map are evidenced by at least one entry "
                "in this period.</p>",
                coverage_table,
            ),
            _section("entries", "All entries in this period", entries_table),
        ]
    )
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'"
    return PAGE.substitute(
        csp=esc(csp),
        style=STYLE,
        script=SCRIPT,
        title=esc(f"Warden audit report — {period}"),
        period=esc(period),
        generated=esc(when(generated_at)),
        source=esc(source),
        total=esc(d.total_entries),
        body=body,
    )
