"""What the report shows when controls did not hold, or when the ledger itself does not verify."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.clock import ManualClock
from bot.controls import ControlMap
from bot.db.models import LedgerEntry
from bot.decisions.service import Decision, DecisionService, Outcome
from bot.ledger import Signer
from bot.report import write_report
from tests.helpers import T0, Populated, rows, section

GUILD = 900
DAVE, BOB = 1001, 1002


async def record(
    session_factory: async_sessionmaker[AsyncSession], decisions: DecisionService, *items: Decision
) -> None:
    async with session_factory() as session, session.begin():
        for decision in items:
            await decisions.record(session, decision)


async def test_failed_controls_and_unreviewed_breakglass(session_factory, tmp_path: Path) -> None:
    clock = ManualClock(T0, frozen=True)
    signer = Signer.generate()
    controls = ControlMap.load_default()
    decisions = DecisionService(signer, controls, clock)
    grant = {"scope": "breakglass-admin", "subject": DAVE, "kind": "role", "role": 77}
    await record(
        session_factory,
        decisions,
        Decision(
            Outcome.BREAKGLASS,
            "scope.breakglass-admin.breakglass",
            "dave used break-glass on breakglass-admin without approval: db locked. Approvers must review it.",
            GUILD,
            {
                "request": 1,
                "grant": 1,
                "scope": "breakglass-admin",
                "subject": DAVE,
                "requester": DAVE,
                "votes": [],
            },
            actor_id=DAVE,
            request_id=1,
            grant_id=1,
        ),
    )
    clock.advance(dt.timedelta(minutes=5))
    await record(
        session_factory,
        decisions,
        Decision(
            Outcome.FAILED,
            "scope.deploy",
            "Warden could not apply grant #2, so no access was given. Discord said 403 Missing Permissions.",
            GUILD,
            {**grant, "grant": 2, "request": 2, "scope": "deploy", "error": "403 Missing Permissions"},
            request_id=2,
            grant_id=2,
        ),
        Decision(
            Outcome.REMOVAL_STUCK,
            "scope.breakglass-admin",
            "Warden has failed 5 times to remove grant #1; the access still exists in Discord.",
            GUILD,
            {**grant, "grant": 1, "attempts": 5, "error": "503"},
            request_id=1,
            grant_id=1,
            controls=("SOC2:CC7.2", "LOCAL:ops-runbook-7"),  # a policy rule naming its own control
        ),
    )
    now = clock.now()
    async with session_factory() as session:
        result = await write_report(session, tmp_path, signer, controls, since=None, until=None, now=now)
    page = result.path.read_text(encoding="utf-8")

    failed = rows(page, "failed-table")
    assert [(r[0], r[2]) for r in failed] == [
        ("1", "break-glass not reviewed"),
        ("2", "failed"),
        ("3", "removal-stuck"),
    ]
    assert f"Break-glass grant #1 by dave ({DAVE}) has no review in the ledger." == failed[0][4]
    assert "403 Missing Permissions" in failed[1][4]
    assert '<div class="tile warn" id="count-failed"><span class="n">3</span>' in page
    assert '<div class="tile warn" id="count-unreviewed"><span class="n">1</span>' in page
    [bg] = rows(page, "breakglass-table")
    assert bg[6] == "NOT REVIEWED"

    coverage = {r[0]: r for r in rows(page, "coverage-table")}
    assert coverage["LOCAL:ops-runbook-7"][2] == "not in the control map"
    assert coverage["LOCAL:ops-runbook-7"][3] == "1"
    assert "Ledger VERIFIED" in page


async def test_a_tampered_ledger_is_reported_as_failed(
    populated: Populated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = populated.world
    async with world.bot.session_factory() as session, session.begin():
        await session.execute(
            update(LedgerEntry).where(LedgerEntry.id == 9).values(reason="approved after all")
        )
    async with world.bot.session_factory() as session:
        result = await write_report(
            session,
            tmp_path / "out",
            populated.signer,
            ControlMap.load_default(),
            since=None,
            until=None,
            now=world.clock.now(),
        )
    v = section(result.path.read_text(encoding="utf-8"), "verification")
    assert '<div class="verdict bad" id="verification-result"><strong>Ledger FAILED</strong>' in v
    assert "entry 9: hash does not match its contents (edited?)" in v
    assert "does not verify" in v  # the export carries the edited entry too
    assert not result.verification.ok

    # The command still writes the report (the evidence of the problem) and exits 1.
    monkeypatch.setenv("WARDEN_DATABASE_URL", populated.database_url)
    monkeypatch.setenv("WARDEN_SIGNING_KEY", str(populated.key_path))
    monkeypatch.chdir(tmp_path)
    code = await asyncio.to_thread(main, ["audit", "report", "--out", str(tmp_path / "cli")])
    assert code == 1
    err = capsys.readouterr().err
    assert "the ledger does not verify" in err and "entry 9: hash does not match" in err
    assert "Ledger FAILED" in (tmp_path / "cli" / "report.html").read_text(encoding="utf-8")


def test_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.html"
    target.write_text("keep me")
    assert main(["audit", "report", "--out", str(target)]) == 2
    assert f"--out {target} exists and is not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep me"


async def test_an_empty_ledger_gives_a_readable_report(session_factory, tmp_path: Path) -> None:
    signer = Signer.generate()
    async with session_factory() as session:
        result = await write_report(
            session, tmp_path, signer, ControlMap.load_default(), since=T0, until=None, now=T0
        )
    page = result.path.read_text(encoding="utf-8")
    assert "<strong>Ledger VERIFIED</strong>: 0 entries" in page
    assert "No grants in this period" in page and "No approvals by vote in this period" in page
    assert "No break-glass access was used in this period." in page
    assert page.count("<svg ") == 3
