"""`warden attest report CAMPAIGN`: a campaign's CSV evidence, from the command line."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io

from bot.cli import main
from bot.db.models import AttestCampaign, AttestItem
from bot.db.session import create_engine, create_session_factory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


async def _seed(url: str) -> None:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as s, s.begin():
            campaign = AttestCampaign(
                guild_id=5,
                started_at=START,
                started_by=7,
                deadline_at=START + dt.timedelta(days=7),
                on_missed="remediate",
                grace_seconds=3600,
            )
            s.add(campaign)
            await s.flush()
            s.add(
                AttestItem(
                    campaign_id=campaign.id,
                    guild_id=5,
                    kind="bot",
                    external_id="99",
                    name='ci-bot, "quoted"',
                    access={"role_ids": ["11"]},
                    owner_id=42,
                    status="attested",
                    answer="keep",
                    answered_by=42,
                    answered_at=START + dt.timedelta(hours=1),
                    notify_attempts=1,
                    attempts=0,
                )
            )
    finally:
        await engine.dispose()


def test_report_writes_csv_and_refuses_an_unknown_campaign(engine, db_url, tmp_path, monkeypatch, capsys):
    asyncio.run(_seed(db_url))
    monkeypatch.setenv("WARDEN_DATABASE_URL", db_url)
    monkeypatch.setenv("WARDEN_CONFIG", str(tmp_path / "absent.toml"))
    out = tmp_path / "campaign.csv"
    assert main(["attest", "report", "1", "--out", str(out)]) == 0
    assert "1 item(s) written" in capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == 'ci-bot, "quoted"' and row["owner"] == "42" and row["reviewed_by"] == "42"
    assert row["answer"] == "keep" and row["answered_at"].startswith("2026-03-02T10:00")

    assert main(["attest", "report", "1"]) == 0
    assert capsys.readouterr().out.startswith("campaign,campaign_started_at")

    assert main(["attest", "report", "9"]) == 2
    assert "no attestation campaign #9" in capsys.readouterr().err
