"""Write the inventory as JSON or CSV (``warden inventory export``). Nothing secret is in it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from bot.inventory.service import InventoryItem

Format = Literal["json", "csv"]
FORMATS: tuple[Format, ...] = ("json", "csv")

CSV_COLUMNS = (
    "id",
    "kind",
    "external_id",
    "name",
    "owner_id",
    "owner_source",
    "risk_score",
    "risk_reasons",
    "permissions",
    "drift_since_baseline",
    "channel_reach",
    "channel_count",
    "channel_id",
    "role_ids",
    "scopes",
    "creator_id",
    "last_activity_at",
    "first_seen_at",
    "last_seen_at",
    "gone_at",
    "guild_id",
)


def render(items: Sequence[InventoryItem], fmt: Format) -> str:
    records = [i.record() for i in items]
    if fmt == "json":
        return json.dumps({"items": records}, indent=2, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        # Lists become one cell: "; " between values (permission names and reasons contain no ";").
        writer.writerow(
            {
                k: "; ".join(str(x) for x in v) if isinstance(v, list) else ("" if v is None else v)
                for k, v in rec.items()
            }
        )
    return buf.getvalue()


def write_inventory(items: Sequence[InventoryItem], out: Path, fmt: Format) -> Path:
    out.write_text(render(items, fmt), encoding="utf-8")
    return out


def write_both(items: Sequence[InventoryItem], directory: Path, stem: str = "inventory") -> tuple[Path, Path]:
    """``inventory.json`` and ``inventory.csv`` in ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    return (
        write_inventory(items, directory / f"{stem}.json", "json"),
        write_inventory(items, directory / f"{stem}.csv", "csv"),
    )
