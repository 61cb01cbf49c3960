"""The auditor's HTML report, written beside the signed evidence export.

``write_report`` verifies the ledger, writes the export (``bot.ledger.export_evidence``)
and ``report.html`` into one directory. The page is self-contained: charts are inline
SVG drawn by matplotlib, tables sort with a few lines of inline script, and nothing is
fetched when it is opened.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy.ext.asyncio import AsyncSession

from bot.controls import ControlMap
from bot.ledger import Signer, export_evidence, iter_entries, verify_chain, verify_export
from bot.report.html import Verification, fingerprint, render
from bot.report.model import ReportData, build_data
from bot.values import from_attributes

REPORT_FILE = "report.html"

__all__ = ["REPORT_FILE", "ReportData", "ReportResult", "build_data", "render", "write_report"]


@dataclass(frozen=True)
class ReportResult:
    path: Path
    data: ReportData
    verification: Verification


async def write_report(
    session: AsyncSession,
    out_dir: Path,
    signer: Signer,
    controls: ControlMap,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    now: dt.datetime,
    source: str = "Warden's database",
) -> ReportResult:
    """Verify the ledger, export it to ``out_dir`` and write ``report.html`` beside it. Read-only."""
    out_dir = Path(out_dir)
    checked = await verify_chain(session, signer.public_key)
    await export_evidence(session, out_dir, signer)
    exported = verify_export(out_dir, signer.public_key_pem())
    records = [record async for record in iter_entries(session)]
    data = build_data(records, controls, since=since, until=until)
    raw = signer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verification = from_attributes(
        Verification,
        checked,
        key_id=signer.key_id,
        fingerprint=fingerprint(raw),
        export_ok=exported.ok,
        export_problems=exported.problems,
    )
    page = render(data, verification, generated_at=now, source=source)
    path = out_dir / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return ReportResult(path, data, verification)
