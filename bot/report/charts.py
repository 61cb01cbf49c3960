"""The report's charts: matplotlib figures rendered to inline SVG (no pyplot, no global state).

Text stays text (``svg.fonttype = none``) so the page is searchable and small, and a
fixed hash salt makes the same ledger give byte-identical SVG.
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
from collections import Counter
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

PALETTE = ("#2b6cb0", "#dd6b20", "#2f855a", "#9b2c2c", "#6b46c1", "#718096", "#b7791f", "#2c7a7b")


def _svg(fig: Figure, salt: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    # Inline in HTML: drop the XML prolog and doctype; keep the <svg> element.
    start = text.find("<svg")
    svg = text[start:]
    return svg.replace("<svg ", '<svg role="img" ', 1)


def _plain(label: str) -> str:
    """Matplotlib treats $…$ as mathtext; scope names are shown as typed."""
    return label.replace("$", r"\$")


def _figure(height: float = 3.2) -> Figure:
    fig = Figure(figsize=(9, height), dpi=96)
    fig.set_facecolor("white")
    return fig


def grants_over_time(grants: Sequence[tuple[dt.datetime, str]], title: str = "Grants per day") -> str:
    """Stacked bars: grants applied per day, one colour per scope."""
    fig = _figure()
    ax = fig.add_subplot()
    if not grants:
        ax.text(0.5, 0.5, "No grants in this period", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _svg(fig, "grants")
    days = sorted({when.date() for when, _ in grants})
    first, last = days[0], days[-1]
    all_days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    per_scope: dict[str, Counter[dt.date]] = {}
    for when, scope in grants:
        per_scope.setdefault(scope or "(no scope)", Counter())[when.date()] += 1
    x = list(range(len(all_days)))
    bottom = [0] * len(all_days)
    for i, (scope, counts) in enumerate(sorted(per_scope.items())):
        heights = [counts[d] for d in all_days]
        ax.bar(x, heights, width=0.8, bottom=bottom, label=_plain(scope), color=PALETTE[i % len(PALETTE)])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]

    def day_label(value: float, _pos: int | None) -> str:
        index = round(value)
        return all_days[index].strftime("%d %b %Y") if 0 <= index < len(all_days) else ""

    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=1))
    ax.xaxis.set_major_formatter(FuncFormatter(day_label))
    ax.set_xlim(-0.6, len(all_days) - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("grants")
    ax.set_title(title, loc="left")
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(title="scope", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "grants")


def latency_histogram(seconds: Sequence[float], title: str = "Time from request to approval") -> str:
    """Histogram of approval latency in minutes, with the median marked."""
    fig = _figure()
    ax = fig.add_subplot()
    if not seconds:
        ax.text(
            0.5, 0.5, "No approvals by vote in this period", ha="center", va="center", transform=ax.transAxes
        )
        ax.set_axis_off()
        return _svg(fig, "latency")
    minutes = sorted(s / 60 for s in seconds)
    bins = min(30, max(5, len(minutes)))
    ax.hist(minutes, bins=bins, color=PALETTE[0], edgecolor="white")
    median = statistics.median(minutes)
    ax.axvline(median, color=PALETTE[1], linestyle="--", label=f"median {median:.1f} min")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("minutes from request to approval")
    ax.set_ylabel("requests")
    ax.set_title(title, loc="left")
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False)
    return _svg(fig, "latency")


def outcomes_bar(counts: Counter[str], title: str = "Decisions by outcome") -> str:
    """Horizontal bars: how many ledger entries of each outcome."""
    fig = _figure(height=max(2.0, 0.32 * len(counts) + 1.0))
    ax = fig.add_subplot()
    if not counts:
        ax.text(0.5, 0.5, "No decisions in this period", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _svg(fig, "outcomes")
    items = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
    labels = [_plain(k) for k, _ in items]
    values = [v for _, v in items]
    bars = ax.barh(labels, values, color=PALETTE[2])
    ax.bar_label(bars, padding=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, "outcomes")
